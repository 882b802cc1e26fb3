//! Codecs and framing.
