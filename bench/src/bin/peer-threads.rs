//! `peer-threads`: one std thread per connection, blocking I/O.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use clap::Parser;

/// Thread-per-connection blocking echo server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args.addr) {
        eprintln!("peer-threads: {e}");
        std::process::exit(1);
    }
}

fn run(addr: &str) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    let mut out = io::stdout();
    writeln!(out, "listening on {}", listener.local_addr()?)?;
    out.flush()?;
    // SIGTERM/SIGINT keep their default action (terminate), which is all this
    // server needs: no state to flush.
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(e) = thread::Builder::new().spawn(move || echo(stream)) {
                    eprintln!("peer-threads: spawn: {e}");
                }
            }
            Err(e) => {
                // e.g. EMFILE: back off instead of spinning.
                eprintln!("peer-threads: accept: {e}");
                thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
    Ok(())
}

fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}
