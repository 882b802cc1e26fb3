//! io_uring(7): the ring, its provided-buffer ring, and the operations netloop
//! submits. Every `unsafe` line of the io_uring backend is here.
//!
//! # What the kernel may touch, and until when
//! A submission hands the kernel raw pointers that it reads or writes later, when
//! the operation runs — possibly several rounds after the call that queued it.
//! The rules that keep that sound:
//!
//! - **Receives** write only into the buffers of the [`BufRing`], which this module
//!   owns for as long as the ring exists. A buffer named by a completion is out of
//!   the kernel's hands until [`BufRing::recycle`] gives it back; only then can it
//!   be written again, so [`BufRing::get`] checks that the buffer is lent.
//! - **Sends** read from the connection's outbound queue
//!   ([`LinkedBuffer`](crate::buffer::LinkedBuffer)), whose blocks never move: the
//!   event loop consumes sent bytes only when the send's completion arrives, only
//!   ever appends behind bytes in flight, and on close hands the queue to the driver,
//!   which keeps it until that completion (see `crate::driver`). `sendmsg`'s header
//!   and iovec array live here, in [`Ring`], until the completion is reaped.
//! - **Everything else** (accept, poll, cancel) passes no pointer.
//! - **Dropping** the ring first cancels every operation and waits (bounded) for
//!   their completions, so no buffer is freed while the kernel may use it.

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The provided-buffer group every multishot receive selects from.
pub(crate) const BUF_GROUP: u16 = 0;

/// `IORING_ENTER_GETEVENTS`: run deferred work and post completions.
const ENTER_GETEVENTS: u32 = 1;

/// How long dropping a ring waits for cancelled operations to complete.
const DROP_WAIT: Duration = Duration::from_secs(2);

/// One completion, copied out of the completion queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cqe {
    pub(crate) user_data: u64,
    pub(crate) res: i32,
    pub(crate) flags: u32,
}

impl Cqe {
    /// More completions will follow for this (multishot) operation.
    pub(crate) fn more(&self) -> bool {
        cqueue::more(self.flags)
    }
    /// The provided buffer this completion filled, if any.
    pub(crate) fn buffer(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }
}

/// What [`Ring::probe`] found missing, or that the kernel refused io_uring.
pub(crate) type ProbeResult = Result<(), String>;

/// An io_uring instance: submission and completion queues, plus the `sendmsg`
/// headers of the sends in flight.
pub(crate) struct Ring {
    ring: IoUring,
    /// The provided-buffer ring, once set up.
    bufs: Option<BufRing>,
    /// `sendmsg` headers (and their iovecs) in flight, by user data.
    msgs: HashMap<u64, Box<MsgSend>>,
    /// Headers of completed sends, kept for the next ones (no allocation per send).
    #[allow(clippy::vec_box)]
    // boxes move to and from `msgs`, where their address must not change
    spare_msgs: Vec<Box<MsgSend>>,
    /// Operations submitted and not yet completed for good (multishot ones count
    /// once, until their last completion).
    pending: usize,
}

/// A `sendmsg` header and the iovec array it points at, kept until completion.
struct MsgSend {
    hdr: libc::msghdr,
    iov: Vec<libc::iovec>,
}

impl Ring {
    /// Creates a ring with `entries` submission slots and `cq_entries` completion
    /// slots. Single-issuer with deferred task work where the kernel has it (6.1+):
    /// completions are then produced only inside the loop's own wait, in one batch.
    pub(crate) fn new(entries: u32, cq_entries: u32) -> io::Result<Ring> {
        let build = |defer: bool| {
            let mut b = IoUring::builder();
            b.setup_cqsize(cq_entries).setup_clamp().setup_submit_all();
            if defer {
                b.setup_single_issuer().setup_defer_taskrun();
            } else {
                b.setup_coop_taskrun();
            }
            b.build(entries)
        };
        let ring = match build(true) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => build(false)?,
            Err(e) => return Err(e),
        };
        Ok(Ring {
            ring,
            bufs: None,
            msgs: HashMap::new(),
            spare_msgs: Vec::new(),
            pending: 0,
        })
    }

    /// Does this kernel offer what the io_uring backend needs? Creates a small ring
    /// and checks its features, the opcodes, and a provided-buffer ring.
    pub(crate) fn probe() -> ProbeResult {
        let mut ring = Ring::new(8, 16).map_err(|e| format!("io_uring_setup failed: {e}"))?;
        let p = ring.ring.params();
        if !p.is_feature_nodrop() {
            return Err("the kernel lacks IORING_FEAT_NODROP (5.5)".into());
        }
        if !p.is_feature_ext_arg() {
            return Err("the kernel lacks IORING_FEAT_EXT_ARG (5.11)".into());
        }
        let mut probe = io_uring::Probe::new();
        ring.ring
            .submitter()
            .register_probe(&mut probe)
            .map_err(|e| format!("IORING_REGISTER_PROBE failed: {e}"))?;
        for (code, name) in [
            (opcode::AcceptMulti::CODE, "ACCEPT"),
            (opcode::RecvMulti::CODE, "RECV"),
            (opcode::Send::CODE, "SEND"),
            (opcode::SendMsg::CODE, "SENDMSG"),
            (opcode::PollAdd::CODE, "POLL_ADD"),
            (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
            // Multishot receive came with 6.0, as did SEND_ZC: its presence is the
            // probe's witness that multishot receive is there too.
            (
                opcode::SendZc::CODE,
                "SEND_ZC (6.0, with multishot receive)",
            ),
        ] {
            if !probe.is_supported(code) {
                return Err(format!("the kernel lacks IORING_OP_{name}"));
            }
        }
        ring.setup_buffers(2, 512)
            .map_err(|e| format!("provided-buffer ring refused: {e}"))?;
        Ok(())
    }

    /// Sets up the provided-buffer ring: `count` (a power of two, at most 32,768)
    /// buffers of `size` bytes.
    pub(crate) fn setup_buffers(&mut self, count: u16, size: u32) -> io::Result<()> {
        self.bufs = Some(BufRing::new(&self.ring, count, size)?);
        Ok(())
    }

    /// The first `len` bytes of provided buffer `bid`, which a completion lent.
    pub(crate) fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        self.bufs.as_ref().expect("buffers set up").get(bid, len)
    }

    /// The same, writable (a transport layer decrypts in place).
    pub(crate) fn buffer_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        self.bufs
            .as_mut()
            .expect("buffers set up")
            .get_mut(bid, len)
    }

    /// Gives provided buffer `bid` back to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16) {
        if let Some(b) = self.bufs.as_mut() {
            b.recycle(bid);
        }
    }

    /// Queues one submission. The slot is free once the next wait submits it; a
    /// full queue is submitted at once to make room.
    fn push(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
        for _ in 0..2 {
            // SAFETY: every entry built in this module points only at memory that
            // outlives the operation (see the module docs): ring buffers, `msgs`
            // entries, or outbound blocks the loop keeps until completion.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                self.pending += 1;
                return Ok(());
            }
            self.ring.submit()?;
        }
        Err(io::Error::other("io_uring submission queue full"))
    }

    /// A multishot receive on `fd` into the provided buffers of [`BUF_GROUP`].
    pub(crate) fn recv_multi(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        self.push(
            &opcode::RecvMulti::new(types::Fd(fd), BUF_GROUP)
                .build()
                .user_data(user_data),
        )
    }

    /// One receive of at most `len` bytes on `fd` into a provided buffer of
    /// [`BUF_GROUP`].
    pub(crate) fn recv_one(&mut self, fd: RawFd, len: u32, user_data: u64) -> io::Result<()> {
        self.push(
            &opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), len)
                .buf_group(BUF_GROUP)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
                .user_data(user_data),
        )
    }

    /// A multishot accept on listening socket `fd`; accepted sockets are
    /// close-on-exec and in *blocking* mode: io_uring honours `O_NONBLOCK`, so on a
    /// non-blocking socket a send with no room (or a receive with no bytes) would
    /// complete at once with `EAGAIN` instead of waiting — and the loop would spin
    /// resubmitting it. In blocking mode io_uring waits asynchronously; nothing
    /// ever blocks a thread, because the loop makes no direct I/O call on a
    /// connection's socket under this driver.
    pub(crate) fn accept_multi(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        self.push(
            &opcode::AcceptMulti::new(types::Fd(fd))
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .user_data(user_data),
        )
    }

    /// A poll for `mask` (`POLLIN`, `POLLOUT`…) on `fd`, one-shot or multishot.
    pub(crate) fn poll(
        &mut self,
        fd: RawFd,
        mask: u32,
        multi: bool,
        user_data: u64,
    ) -> io::Result<()> {
        self.push(
            &opcode::PollAdd::new(types::Fd(fd), mask)
                .multi(multi)
                .build()
                .user_data(user_data),
        )
    }

    /// Cancels the operation(s) submitted with `target`; the cancellation's own
    /// completion carries `user_data`.
    pub(crate) fn cancel(&mut self, target: u64, user_data: u64) -> io::Result<()> {
        self.push(
            &opcode::AsyncCancel::new(target)
                .build()
                .user_data(user_data),
        )
    }

    /// Sends `bufs` on `fd` (`MSG_NOSIGNAL`): one `send` for one slice, `sendmsg`
    /// gathering several.
    ///
    /// The slices must stay where they are, unchanged, until this operation's
    /// completion has been reaped: they are a connection's outbound blocks, which
    /// the loop consumes only on that completion and hands to the driver on close
    /// (see the module docs).
    pub(crate) fn send(
        &mut self,
        fd: RawFd,
        bufs: &[IoSlice<'_>],
        user_data: u64,
    ) -> io::Result<()> {
        if let [one] = bufs {
            let len = u32::try_from(one.len()).unwrap_or(u32::MAX);
            return self.push(
                &opcode::Send::new(types::Fd(fd), one.as_ptr(), len)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(user_data),
            );
        }
        let mut msg = self.spare_msgs.pop().unwrap_or_else(|| {
            Box::new(MsgSend {
                // SAFETY: an all-zero msghdr is a valid (empty) header.
                hdr: unsafe { std::mem::zeroed() },
                iov: Vec::new(),
            })
        });
        msg.iov.clear();
        msg.iov.extend(bufs.iter().map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        }));
        msg.hdr.msg_iov = msg.iov.as_mut_ptr();
        msg.hdr.msg_iovlen = msg.iov.len() as _;
        let sqe = opcode::SendMsg::new(types::Fd(fd), &msg.hdr)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(user_data);
        // The header lives in its box, which stays in `msgs` until the completion.
        self.msgs.insert(user_data, msg);
        self.push(&sqe).inspect_err(|_| {
            self.msgs.remove(&user_data);
        })
    }

    /// Submits what is queued and waits for at least one completion — for at most
    /// `timeout` (`None`: until one arrives; zero: not at all) — in one
    /// `io_uring_enter`.
    pub(crate) fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let ready = !self.ring.completion().is_empty();
        let queued = self.ring.submission().len() as u32;
        let sub = self.ring.submitter();
        let res = match timeout {
            _ if ready => {
                // Completions are waiting: submit, and run deferred work, no wait.
                // SAFETY: no argument pointer is passed.
                unsafe { sub.enter::<libc::sigset_t>(queued, 0, ENTER_GETEVENTS, None) }
            }
            Some(d) if d.is_zero() => {
                // SAFETY: no argument pointer is passed.
                unsafe { sub.enter::<libc::sigset_t>(queued, 0, ENTER_GETEVENTS, None) }
            }
            Some(d) => {
                let ts = types::Timespec::from(d);
                sub.submit_with_args(1, &types::SubmitArgs::new().timespec(&ts))
            }
            None => sub.submit_and_wait(1),
        };
        match res {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                // Timed out, interrupted, or completions must be reaped first.
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// Submits what is queued without waiting.
    pub(crate) fn submit(&mut self) -> io::Result<()> {
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Submissions queued and not yet handed to the kernel.
    pub(crate) fn unsubmitted(&mut self) -> usize {
        self.ring.submission().len()
    }

    /// Moves up to `max` completions into `out`; returns how many.
    pub(crate) fn reap(&mut self, out: &mut Vec<Cqe>, max: usize) -> usize {
        let mut cq = self.ring.completion();
        let mut n = 0;
        for e in cq.by_ref().take(max) {
            let c = Cqe {
                user_data: e.user_data(),
                res: e.result(),
                flags: e.flags(),
            };
            if let (Some(bid), Some(bufs)) = (c.buffer(), self.bufs.as_mut()) {
                bufs.lend(bid);
            }
            if !c.more() {
                self.pending = self.pending.saturating_sub(1);
                if !self.msgs.is_empty() {
                    if let Some(msg) = self.msgs.remove(&c.user_data) {
                        // At most as many as were ever in flight at once.
                        self.spare_msgs.push(msg);
                    }
                }
            }
            out.push(c);
            n += 1;
        }
        n
    }

    /// Completions the kernel had to drop (a full completion queue on a kernel
    /// without `IORING_FEAT_NODROP`; never on the kernels the probe accepts).
    pub(crate) fn dropped(&mut self) -> u32 {
        self.ring.completion().overflow()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Cancel everything still in flight, then wait (bounded) for the
        // completions, so no memory an operation points at is freed before it.
        if self.pending > 0 {
            self.cancel_all(|_| {});
        }
        if self.pending > 0 {
            // Leak what may still be referenced rather than free it under the kernel.
            tracing::warn!(
                pending = self.pending,
                "io_uring operations still in flight at close; their memory is leaked"
            );
            std::mem::forget(std::mem::take(&mut self.msgs));
            std::mem::forget(self.bufs.take());
        } else if let Some(mut b) = self.bufs.take() {
            b.unregister(&self.ring);
        }
    }
}

impl Ring {
    /// Cancels every operation in flight and waits (bounded) for their last
    /// completions, handing each to `each` (which must close accepted sockets).
    pub(crate) fn cancel_all(&mut self, mut each: impl FnMut(&Cqe)) {
        let any = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(u64::MAX);
        // SAFETY: a cancellation passes no pointer.
        if unsafe { self.ring.submission().push(&any) }.is_ok() {
            self.pending += 1;
        }
        let end = Instant::now() + DROP_WAIT;
        let mut sink = Vec::new();
        while self.pending > 0 && Instant::now() < end {
            let left = end.saturating_duration_since(Instant::now());
            if self
                .submit_and_wait(Some(left.min(Duration::from_millis(50))))
                .is_err()
            {
                break;
            }
            sink.clear();
            self.reap(&mut sink, usize::MAX);
            sink.iter().for_each(&mut each);
        }
    }
}

/// Takes ownership of the descriptor a successful accept completion returned.
/// Called once per such completion (the driver converts each when it reaps it).
pub(crate) fn accepted(res: i32) -> OwnedFd {
    debug_assert!(res >= 0);
    // SAFETY: `res` is a descriptor the kernel just created for this accept
    // completion; each completion is reaped once, so nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(res) }
}

/// The provided-buffer ring: the loop's shared receive buffer, cut into `count`
/// buffers of `size` bytes that multishot receives fill. A buffer a completion
/// names is lent to the loop until [`recycle`](Self::recycle) gives it back.
struct BufRing {
    /// `count` ring entries (16 bytes each), page aligned.
    entries: *mut types::BufRingEntry,
    /// `count * size` bytes of buffers.
    bufs: *mut u8,
    count: u16,
    size: u32,
    /// The tail the kernel reads; ours to advance.
    tail: u16,
    /// Which buffers are lent to the loop (out of the kernel's hands).
    lent: Vec<bool>,
    /// Unregistered by the ring's drop, or here when registration failed.
    registered: bool,
}

const PAGE: usize = 4096;

impl BufRing {
    /// Allocates `count` (a power of two, at most 32,768) buffers of `size` bytes,
    /// registers them with `ring` as group [`BUF_GROUP`], and gives them all to
    /// the kernel.
    fn new(ring: &IoUring, count: u16, size: u32) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > 32_768 || size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer ring: count must be a power of two up to 32768, size non-zero",
            ));
        }
        let ring_layout =
            Layout::from_size_align(count as usize * 16, PAGE).map_err(io::Error::other)?;
        let buf_layout = Layout::from_size_align(count as usize * size as usize, PAGE)
            .map_err(io::Error::other)?;
        // SAFETY: both layouts have a non-zero size.
        let entries = unsafe { alloc_zeroed(ring_layout) } as *mut types::BufRingEntry;
        // SAFETY: as above.
        let bufs = unsafe { alloc_zeroed(buf_layout) };
        if entries.is_null() || bufs.is_null() {
            // SAFETY: each pointer is freed only if it was allocated, with its layout.
            unsafe {
                if !entries.is_null() {
                    dealloc(entries.cast(), ring_layout);
                }
                if !bufs.is_null() {
                    dealloc(bufs, buf_layout);
                }
            }
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut br = BufRing {
            entries,
            bufs,
            count,
            size,
            tail: 0,
            lent: vec![true; count as usize],
            registered: false,
        };
        // SAFETY: the entries stay allocated until this BufRing drops, which
        // unregisters the group first (the kernel keeps no pointer after that).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, count, BUF_GROUP, 0)?;
        }
        br.registered = true;
        for bid in 0..count {
            br.recycle(bid);
        }
        Ok(br)
    }

    /// The first `len` bytes of lent buffer `bid`.
    fn get(&self, bid: u16, len: usize) -> &[u8] {
        assert!(self.lent[bid as usize] && len <= self.size as usize);
        // SAFETY: the buffer is inside the allocation, and lent: the kernel does
        // not write it until it is recycled, which takes `&mut self`.
        unsafe { std::slice::from_raw_parts(self.bufs.add(bid as usize * self.size as usize), len) }
    }

    /// The first `len` bytes of lent buffer `bid`, writable (a transport layer
    /// decrypts in place).
    fn get_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        assert!(self.lent[bid as usize] && len <= self.size as usize);
        // SAFETY: as in `get`, and `&mut self` makes the slice unique.
        unsafe {
            std::slice::from_raw_parts_mut(self.bufs.add(bid as usize * self.size as usize), len)
        }
    }

    /// Gives buffer `bid` back to the kernel (a buffer not lent is ignored).
    fn recycle(&mut self, bid: u16) {
        let Some(lent) = self.lent.get_mut(bid as usize) else {
            return;
        };
        if !*lent {
            return;
        }
        *lent = false;
        let mask = self.count - 1;
        // SAFETY: `tail & mask` indexes one of the `count` entries; the kernel
        // reads an entry only once the tail published below covers it.
        unsafe {
            let e = &mut *self.entries.add((self.tail & mask) as usize);
            e.set_addr(self.bufs.add(bid as usize * self.size as usize) as u64);
            e.set_len(self.size);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is the u16 the kernel shares at offset 14 of entry 0,
        // suitably aligned; the release store publishes the entry written above.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Marks buffer `bid`, named by a completion, as lent to the loop.
    fn lend(&mut self, bid: u16) {
        if let Some(l) = self.lent.get_mut(bid as usize) {
            *l = true;
        }
    }

    /// Unregisters the group (before the memory goes).
    fn unregister(&mut self, ring: &IoUring) {
        if self.registered {
            let _ = ring.submitter().unregister_buf_ring(BUF_GROUP);
            self.registered = false;
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.registered {
            // The ring is gone (its drop ends every operation) or the group was
            // never unregistered: leaking is the only safe choice.
            return;
        }
        let ring_layout = Layout::from_size_align(self.count as usize * 16, PAGE).expect("checked");
        let buf_layout = Layout::from_size_align(self.count as usize * self.size as usize, PAGE)
            .expect("checked");
        // SAFETY: allocated in `new` with these layouts; unregistered, so the
        // kernel holds no pointer to either.
        unsafe {
            dealloc(self.entries.cast(), ring_layout);
            dealloc(self.bufs, buf_layout);
        }
    }
}
