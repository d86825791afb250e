//! pcap and pcapng reader producing Segments. (Filled in by the decoder work.)
