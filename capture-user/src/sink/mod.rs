//! Output formats for events: text lines, JSON Lines, pcapng. (Filled in by the decoder work.)
