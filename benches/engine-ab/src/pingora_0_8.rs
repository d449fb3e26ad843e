//! Hello proxy on Pingora 0.8 (see hello.rs).
use pingora_0_8 as pingora;
include!("hello.rs");
