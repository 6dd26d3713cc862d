//! Log output without secrets.
//!
//! Every log line passes through [`RedactingWriter`] before it is written:
//! each source secret the process knows (the values of the connectors'
//! secret keys, see `meshgate_connectors::secrets`) is replaced by
//! `<redacted>`. Messages are built from errors of drivers and libraries
//! meshgate does not control, so this is the last line of defence rather
//! than the first: errors are already redacted where they are made.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

/// A [`MakeWriter`] that redacts known secrets from each log event.
pub struct RedactingWriter<M> {
    inner: M,
}

impl<M> RedactingWriter<M> {
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingWriter<M> {
    type Writer = EventWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            inner: self.inner.make_writer(),
            buffer: Vec::new(),
        }
    }
}

/// Collects one event's text and writes it redacted when done (a writer
/// is made per event, so a secret is never split across two writes).
pub struct EventWriter<W: Write> {
    inner: W,
    buffer: Vec<u8>,
}

impl<W: Write> EventWriter<W> {
    fn write_out(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buffer).into_owned();
        self.buffer.clear();
        self.inner
            .write_all(meshgate_connectors::secrets::redact(&text).as_bytes())
    }
}

impl<W: Write> Write for EventWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.write_out()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for EventWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn known_secrets_never_reach_the_log() {
        meshgate_connectors::secrets::remember("log-secret-4711");
        let sink = Sink::default();
        let writer = RedactingWriter::new({
            let sink = sink.clone();
            move || sink.clone()
        });
        {
            let mut event = writer.make_writer();
            // Split across writes, as a formatter may do.
            event.write_all(b"connect failed: pass=log-sec").unwrap();
            event.write_all(b"ret-4711 host=db\n").unwrap();
        }
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "connect failed: pass=<redacted> host=db\n");
    }
}
