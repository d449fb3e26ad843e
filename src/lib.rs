//! End-to-end test package for Gatehouse (tests live in tests/).
