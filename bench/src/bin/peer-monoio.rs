//! `peer-monoio`: monoio on its io_uring driver, one thread (thread-per-core
//! with a single core), a task per connection, as monoio's examples teach.
//! If io_uring is refused (old kernel, seccomp, sysctl) it exits with status 2
//! and a one-line reason on stderr instead of falling back to epoll.

#[cfg(feature = "monoio")]
mod imp {
    use std::io::Write;

    use clap::Parser;
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    use monoio::net::{TcpListener, TcpStream};

    /// monoio (io_uring) echo server.
    #[derive(Parser)]
    struct Args {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: String,
    }

    pub fn main() {
        let args = Args::parse();
        let mut rt = match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("peer-monoio: io_uring runtime unavailable: {e}");
                std::process::exit(2);
            }
        };
        // SIGTERM/SIGINT keep their default action (terminate the process).
        if let Err(e) = rt.block_on(serve(args.addr)) {
            eprintln!("peer-monoio: {e}");
            std::process::exit(1);
        }
    }

    async fn serve(addr: String) -> std::io::Result<()> {
        let listener = TcpListener::bind(addr.as_str())?;
        let mut out = std::io::stdout();
        writeln!(out, "listening on {}", listener.local_addr()?)?;
        out.flush()?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    monoio::spawn(echo(stream));
                }
                Err(e) => {
                    // e.g. EMFILE: back off instead of spinning.
                    eprintln!("peer-monoio: accept: {e}");
                    monoio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }

    async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
        let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
        loop {
            let (res, b) = stream.read(buf).await;
            buf = b;
            if res? == 0 {
                return Ok(());
            }
            let (res, b) = stream.write_all(buf).await;
            buf = b;
            res?;
            buf.clear();
        }
    }
}

#[cfg(feature = "monoio")]
fn main() {
    imp::main();
}

#[cfg(not(feature = "monoio"))]
fn main() {
    eprintln!("peer-monoio: built without the `monoio` feature (monoio did not compile here)");
    std::process::exit(2);
}
