//! Joins `flow` and `proto`: segments in, events out. (Filled in by the decoder work.)
