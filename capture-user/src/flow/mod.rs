//! TCP reassembly per connection, both directions. (Filled in by the decoder work.)
