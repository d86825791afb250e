//! HTTP/1.1 request and response heads: the WebSocket upgrade handshake and
//! plain HTTP messages. (Filled in by the decoder work.)
