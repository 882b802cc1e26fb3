//! Load balancers: how the main reactor picks a sub-loop for a new connection.

use crate::engine::shared::LoopShared;
use crate::options::LoadBalancer;
use socket2::SockAddr;
use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The main reactor's balancer over its sub-loops.
pub(crate) struct Balancer {
    kind: LoadBalancer,
    next: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl Balancer {
    pub(crate) fn new(kind: LoadBalancer) -> Balancer {
        Balancer {
            kind,
            next: 0,
            hasher: Default::default(),
        }
    }

    /// Picks the loop for a connection from `peer`.
    pub(crate) fn pick(&mut self, loops: &[Arc<LoopShared>], peer: &SockAddr) -> usize {
        let n = loops.len();
        if n == 1 {
            return 0;
        }
        match self.kind {
            LoadBalancer::RoundRobin => self.round_robin(n),
            LoadBalancer::LeastConnections => {
                // Ties go to the lowest index, starting the scan after the last pick so
                // that equal loops still take turns.
                let start = self.next;
                let best = (0..n)
                    .map(|k| (start + k) % n)
                    .min_by_key(|&i| loops[i].connections.load(Ordering::Relaxed))
                    .unwrap_or(0);
                self.next = (best + 1) % n;
                best
            }
            LoadBalancer::SourceAddrHash => match peer.as_socket() {
                Some(sa) => (self.hasher.hash_one(sa.ip()) % n as u64) as usize,
                None => self.round_robin(n),
            },
        }
    }

    fn round_robin(&mut self, n: usize) -> usize {
        let i = self.next % n;
        self.next = (i + 1) % n;
        i
    }
}
