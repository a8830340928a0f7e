//! The simulator's push faults where FIX feels them, on the wire under the session layer. A
//! dropped ExecutionReport is a frame never written: the session stored it, so the gap it leaves
//! is filled by a ResendRequest. A duplicate is the frame again as a resend (PossDupFlag, the
//! same MsgSeqNum). A lost response is the connection cut in place of the answer's frame, or in
//! the middle of a resend.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use ironfix_tagvalue::Encoder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const SOH: u8 = 1;

/// What becomes of one ExecutionReport's first sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Sent,
    Dropped,
    /// Sent, then sent again as a possible duplicate.
    Repeated,
}

/// What the wire asks of the simulator, frame by frame.
pub trait WireFaults: Send + Sync {
    /// Rolls the push dice for one ExecutionReport.
    fn report_fate(&self) -> Fate;
    /// Rolls the lost-response dice for one report sent again: a resend is an answer too, and
    /// the line can drop in the middle of one.
    fn cuts_a_resend(&self) -> bool;
}

/// Shared with the acceptor's application: set to lose the next answer by cutting the line.
#[derive(Debug, Default)]
pub struct CutSwitch(AtomicBool);

impl CutSwitch {
    pub fn arm(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

/// A stream whose writes pass through the faults, frame by frame. Reads pass untouched until
/// the line is cut.
pub struct FaultyWire<S> {
    inner: S,
    faults: Arc<dyn WireFaults>,
    cut_switch: Arc<CutSwitch>,
    /// Bytes the session wrote that do not yet make a whole frame.
    partial: Vec<u8>,
    /// Bytes to write to `inner`.
    out: Vec<u8>,
    cut: bool,
}

impl<S> FaultyWire<S> {
    pub fn new(inner: S, faults: Arc<dyn WireFaults>, cut_switch: Arc<CutSwitch>) -> Self {
        FaultyWire {
            inner,
            faults,
            cut_switch,
            partial: Vec::new(),
            out: Vec::new(),
            cut: false,
        }
    }

    fn take_frames(&mut self) {
        while let Some(len) = frame_len(&self.partial) {
            let frame: Vec<u8> = self.partial.drain(..len).collect();
            if self.cut {
                continue;
            }
            if is_resent_report(&frame) && self.faults.cuts_a_resend() {
                self.cut = true;
                continue;
            }
            if !is_first_report(&frame) {
                self.out.extend_from_slice(&frame);
                continue;
            }
            if self.cut_switch.take() {
                self.cut = true;
                continue;
            }
            match self.faults.report_fate() {
                Fate::Sent => self.out.extend_from_slice(&frame),
                Fate::Dropped => {}
                Fate::Repeated => {
                    self.out.extend_from_slice(&frame);
                    if let Some(again) = as_possible_duplicate(&frame) {
                        self.out.extend_from_slice(&again);
                    }
                }
            }
        }
    }
}

/// The length of the whole frame at the start of `bytes`, once all of it is there.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let first = bytes.iter().position(|b| *b == SOH)?;
    let rest = bytes.get(first + 1..)?;
    let length_end = rest.iter().position(|b| *b == SOH)?;
    let body_len: usize = std::str::from_utf8(rest.get(..length_end)?)
        .ok()?
        .strip_prefix("9=")?
        .parse()
        .ok()?;
    // The body, then `10=NNN<SOH>`.
    let len = first + 1 + length_end + 1 + body_len + 7;
    (bytes.len() >= len).then_some(len)
}

fn fields(frame: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    frame
        .split(|b| *b == SOH)
        .filter(|f| !f.is_empty())
        .filter_map(|f| {
            let eq = f.iter().position(|b| *b == b'=')?;
            Some((&f[..eq], &f[eq + 1..]))
        })
}

fn field<'a>(frame: &'a [u8], tag: &[u8]) -> Option<&'a [u8]> {
    fields(frame).find(|(t, _)| *t == tag).map(|(_, v)| v)
}

/// An ExecutionReport sent for the first time (a resend is the session's own repair).
fn is_first_report(frame: &[u8]) -> bool {
    field(frame, b"35") == Some(b"8") && field(frame, b"43") != Some(b"Y")
}

fn is_resent_report(frame: &[u8]) -> bool {
    field(frame, b"35") == Some(b"8") && field(frame, b"43") == Some(b"Y")
}

/// The frame as a resend of itself: PossDupFlag and OrigSendingTime added, the rest unchanged.
fn as_possible_duplicate(frame: &[u8]) -> Option<Vec<u8>> {
    let begin = std::str::from_utf8(field(frame, b"8")?).ok()?;
    let mut encoder = Encoder::new(begin);
    for (tag, value) in fields(frame) {
        let tag: u32 = std::str::from_utf8(tag).ok()?.parse().ok()?;
        match tag {
            // BeginString, BodyLength and CheckSum: the encoder writes them.
            8..=10 => {}
            34 => {
                encoder.put_raw(34, value);
                encoder.put_raw(43, b"Y");
            }
            52 => {
                encoder.put_raw(52, value);
                encoder.put_raw(122, value);
            }
            _ => encoder.put_raw(tag, value),
        }
    }
    encoder.finish().ok().map(<[u8]>::to_vec)
}

impl<S: AsyncWrite + Unpin> FaultyWire<S> {
    /// Writes what is waiting to `inner`, as far as it takes it now.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => {
                    self.out.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn cut_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "line cut (lost response)",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for FaultyWire<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.cut {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FaultyWire<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.cut {
            return Poll::Ready(Err(cut_error()));
        }
        this.partial.extend_from_slice(buf);
        this.take_frames();
        // What `inner` does not take now waits in `out` for the flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if this.cut {
            // Everything before the cut is out; the line goes down in place of the answer.
            return match Pin::new(&mut this.inner).poll_shutdown(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(_) => Poll::Ready(Err(cut_error())),
            };
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(msg_type: &str, seq: u64, body: &[(u32, &str)]) -> Vec<u8> {
        let mut encoder = Encoder::new("FIX.4.4");
        encoder.put_str(35, msg_type);
        encoder.put_str(49, "EXCH");
        encoder.put_str(56, "OK");
        encoder.put_uint(34, seq);
        encoder.put_str(52, "20261207-10:00:00.000");
        for (tag, value) in body {
            encoder.put_str(*tag, value);
        }
        encoder.finish().unwrap().to_vec()
    }

    #[test]
    fn a_frame_is_found_whole_and_only_whole() {
        let one = frame("8", 7, &[(17, "F1"), (150, "F")]);
        assert_eq!(frame_len(&one), Some(one.len()));
        assert_eq!(frame_len(&one[..one.len() - 1]), None);
        let mut two = one.clone();
        two.extend(frame("0", 8, &[]));
        assert_eq!(frame_len(&two), Some(one.len()));
    }

    /// Faults that always say the same.
    struct Always(Fate, bool);

    impl WireFaults for Always {
        fn report_fate(&self) -> Fate {
            self.0
        }
        fn cuts_a_resend(&self) -> bool {
            self.1
        }
    }

    /// What crosses the wire when the session writes `frames` through `faults` (the answer lost
    /// when `lose` is set), and whether its last flush went through.
    async fn across(faults: Always, lose: bool, frames: &[Vec<u8>]) -> (Vec<u8>, bool) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let cut = Arc::new(CutSwitch::default());
        if lose {
            cut.arm();
        }
        let mut wire = FaultyWire::new(near, Arc::new(faults), cut);
        let mut flushed = true;
        for frame in frames {
            flushed &= wire.write_all(frame).await.is_ok() && wire.flush().await.is_ok();
        }
        drop(wire);
        let mut crossed = Vec::new();
        far.read_to_end(&mut crossed).await.expect("read");
        (crossed, flushed)
    }

    #[actix_web::test]
    async fn the_wire_drops_repeats_and_cuts_reports_as_the_faults_say() {
        let heartbeat = frame("0", 7, &[]);
        let report = frame("8", 8, &[(17, "F1"), (150, "F")]);
        let resent = as_possible_duplicate(&report).unwrap();
        let both = [heartbeat.clone(), report.clone()];
        let joined = |parts: &[&Vec<u8>]| parts.iter().flat_map(|p| p.iter().copied()).collect();

        let sent = across(Always(Fate::Sent, false), false, &both).await;
        assert_eq!(sent, (joined(&[&heartbeat, &report]), true));
        let dropped = across(Always(Fate::Dropped, false), false, &both).await;
        assert_eq!(
            dropped,
            (joined(&[&heartbeat]), true),
            "only the report goes"
        );
        let repeated = across(Always(Fate::Repeated, false), false, &both).await;
        assert_eq!(repeated, (joined(&[&heartbeat, &report, &resent]), true));
        // A lost answer: the line goes down in place of the first report, and nothing after it.
        let three = [heartbeat.clone(), report.clone(), heartbeat.clone()];
        let lost = across(Always(Fate::Sent, false), true, &three).await;
        assert_eq!(lost, (joined(&[&heartbeat]), false));
        // A resend is never dropped, but the line may go down in the middle of one.
        let kept = across(
            Always(Fate::Dropped, false),
            false,
            std::slice::from_ref(&resent),
        )
        .await;
        assert_eq!(kept, (resent.clone(), true));
        let cut = across(
            Always(Fate::Sent, true),
            false,
            &[heartbeat.clone(), resent],
        )
        .await;
        assert_eq!(cut, (joined(&[&heartbeat]), false));
    }

    #[test]
    fn a_duplicate_is_the_same_message_marked_as_one() {
        let first = frame("8", 7, &[(17, "F1"), (150, "F"), (32, "5")]);
        let again = as_possible_duplicate(&first).unwrap();
        let decoded = ironfix_tagvalue::Decoder::new(&again)
            .decode()
            .map(|m| m.get_field_str(34).map(str::to_owned));
        assert!(
            decoded.is_ok(),
            "length and checksum restamped: {decoded:?}"
        );
        assert_eq!(field(&again, b"34"), Some(&b"7"[..]));
        assert_eq!(field(&again, b"43"), Some(&b"Y"[..]));
        assert_eq!(field(&again, b"122"), field(&first, b"52"));
        assert_eq!(field(&again, b"17"), Some(&b"F1"[..]));
        assert!(is_first_report(&first));
        assert!(!is_first_report(&again), "a resend is no first sending");
        assert!(is_resent_report(&again) && !is_resent_report(&first));
        assert!(!is_first_report(&frame("0", 8, &[])));
    }
}
