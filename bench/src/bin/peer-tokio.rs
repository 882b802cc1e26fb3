//! `peer-tokio`: a tokio task per connection, as the tokio tutorial teaches.
//! `--threads 1` (the default) runs a current_thread runtime; more threads use
//! the multi-thread runtime with that many workers.

use std::io::Write;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// Tokio echo server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
    /// Runtime threads: 1 = current_thread runtime, more = multi-thread runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    rt.block_on(serve(&args.addr))
}

async fn serve(addr: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", listener.local_addr()?)?;
    out.flush()?;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((mut socket, _)) => {
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 8192];
                        loop {
                            let n = match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
                Err(e) => {
                    // e.g. EMFILE: back off instead of spinning.
                    eprintln!("peer-tokio: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    Ok(())
}
