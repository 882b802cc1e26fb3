//! Deterministic bad input for the "never panics" tests.

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    /// The next pseudo-random value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bad input for "never panics" tests: 1 to `max_seeds` seeds concatenated, then
/// up to `max_edits` random byte edits (overwrite, overwrite with a byte from
/// `special`, delete, insert), and on every tenth round up to 3,000 random bytes.
pub fn mutated(
    rng: &mut Rng,
    round: usize,
    seeds: &[&[u8]],
    max_seeds: usize,
    max_edits: usize,
    special: &[u8],
) -> Vec<u8> {
    let mut input = Vec::new();
    for _ in 0..1 + rng.below(max_seeds) {
        input.extend_from_slice(seeds[rng.below(seeds.len())]);
    }
    for _ in 0..rng.below(max_edits) {
        let i = rng.below(input.len());
        match rng.below(4) {
            0 => input[i] = rng.next() as u8,
            1 => input[i] = special[rng.below(special.len())],
            2 => {
                input.remove(i);
            }
            _ => input.insert(i, rng.next() as u8),
        }
    }
    if round % 10 == 0 {
        input.extend((0..rng.below(3000)).map(|_| rng.next() as u8));
    }
    input
}
