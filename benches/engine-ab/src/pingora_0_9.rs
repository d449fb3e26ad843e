//! Hello proxy on Pingora 0.9.1 (see hello.rs).
use pingora_0_9 as pingora;
include!("hello.rs");
