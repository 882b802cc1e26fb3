//! Framed echo server: decodes each connection's frames with a codec and writes every
//! frame back, encoded with the same codec (so the reply stream equals the request
//! stream byte for byte).
//!
//! ```text
//! cargo run --release --example framed_echo -- --addr 127.0.0.1:9000 --codec line
//! cargo run --release --example framed_echo -- --codec length-field=4,be --max-frame 65536
//! cargo run --release --example framed_echo -- --codec delimiter=00 --loops 2
//! cargo run --release --example framed_echo -- --codec fixed=16
//! ```
//!
//! A peer that breaks the framing (a line longer than `--max-frame`, an absurd length
//! field) is disconnected; the server keeps serving everyone else.
mod common;

use clap::Parser;
use netloop::codec::{CodecSpec, FrameConn, FrameHandler, Framed};
use netloop::{Action, CloseReason, Engine};

#[derive(Parser)]
#[command(about = "netloop framed echo server")]
struct Args {
    /// HOST:PORT, or a tcp://, tcp4://, tcp6:// or unix:// URL.
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: String,
    /// Number of event loops.
    #[arg(long, default_value_t = 1)]
    loops: usize,
    /// I/O backend: epoll | uring | auto (io_uring where the kernel allows it).
    #[arg(long, default_value = "epoll")]
    backend: netloop::Backend,
    /// single | reactor | reuseport | shared (auto: single for one loop, else reactor).
    #[arg(long, default_value = "auto")]
    mode: String,
    /// line[=lf|crlf] | delimiter=<hex bytes>[,<hex>...] | fixed=<n> |
    /// length-field=<1|2|3|4|8>,<be|le> | frame
    #[arg(long, default_value = "line")]
    codec: CodecSpec,
    /// Maximum payload length in bytes; longer frames close the connection.
    #[arg(long, default_value_t = netloop::codec::DEFAULT_MAX_FRAME_LEN)]
    max_frame: usize,
}

#[derive(Clone)]
struct Echo;

impl FrameHandler for Echo {
    type State = ();

    fn on_frame(&mut self, conn: &mut FrameConn<'_, '_, ()>, frame: &[u8]) -> Action {
        // `frame` points into the connection's inbound bytes; `send` writes header,
        // frame and trailer with one writev.
        match conn.send(frame) {
            Ok(()) => Action::None,
            Err(_) => Action::Close,
        }
    }

    fn on_close(&mut self, conn: &mut FrameConn<'_, '_, ()>, reason: &CloseReason) {
        if let CloseReason::Protocol(msg) = reason {
            tracing::info!(
                conn = %conn.id(),
                "dropped a peer that broke the framing: {msg}"
            );
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    let mode = common::parse_mode(&args.mode, args.loops)?;
    let server = Framed::from_spec(&args.codec, args.max_frame, Echo)?;
    let engine = Engine::builder()
        .backend(args.backend)
        .loops(args.loops)
        .mode(mode)
        .listen(args.addr.as_str())
        .start_with(server)?;
    for a in engine.local_addrs() {
        println!(
            "listening on {}",
            a.to_string().trim_start_matches("tcp://")
        );
    }
    eprintln!("codec {}, max frame {} bytes", args.codec, args.max_frame);
    common::stop_on_signals(engine.handle());
    engine.wait();
    Ok(())
}
