//! tokio-tungstenite echo server, the peer netloop's `websocket` example is
//! measured against: every text or binary message comes back; tungstenite
//! answers pings and closes itself. Default configuration (so its default
//! buffers), current-thread runtime unless `--threads` says otherwise.
//! tungstenite does not implement permessage-deflate.
//!
//! ```text
//! peer-tungstenite --addr 127.0.0.1:9011 [--threads 1]
//! ```

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// HOST:PORT to listen on.
    #[arg(long, default_value = "127.0.0.1:9011")]
    addr: String,
    /// Worker threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        let echo = match msg {
            Message::Text(_) | Message::Binary(_) => msg,
            Message::Close(_) => break,
            _ => continue,
        };
        if ws.send(echo).await.is_err() {
            return;
        }
    }
}

fn main() {
    let args = Args::parse();
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .expect("building the runtime");
    rt.block_on(async {
        let listener = TcpListener::bind(&args.addr).await.expect("binding");
        println!(
            "listening on {}",
            listener.local_addr().expect("local address")
        );
        loop {
            if let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve(s));
            }
        }
    });
}
