//! The `uploads` fault: 400 connections stalling 1 byte short of a 1 MiB
//! body, against the collector's body budget.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use super::receiver::Receiver;
use super::trial::{End, Plan, Run, Sink, Trial, paced};
use super::{Row, Single};

/// Uploads stalled.
const STALLED: usize = 400;
/// The body size each declares.
const DECLARED: usize = 1024 * 1024;
/// The resident set allowed over the idle one and the body budget.
const SLACK_KIB: u64 = 32 * 1024;

/// 400 connections each sending all of a 1 MiB body but its last byte,
/// then stalling: what the body budget admits is held, the rest is
/// refused before its body is read, and the resident set stays within the
/// budget (64 MiB) and the idle footprint, plus a slack.
pub(super) const UPLOADS: Single<UploadsTrial> = Single {
    name: "uploads",
    needs: &[],
    set_up: |_| {
        Ok(UploadsTrial {
            receiver: Receiver::start()?,
            idle: 0,
            peak: 0,
            holding: 0,
            refused: 0,
        })
    },
};

pub(super) struct UploadsTrial {
    receiver: Arc<Receiver>,
    /// The collector's resident set before the uploads, in KiB.
    idle: u64,
    /// Its peak resident set with the uploads held, in KiB.
    peak: u64,
    /// Uploads held, and refused.
    holding: usize,
    refused: usize,
}

impl Trial for UploadsTrial {
    /// Served as before once the uploads are gone: 2 s of load.
    fn plan(&self) -> Plan {
        Plan {
            settle: Duration::from_millis(500),
            ..Plan::new(
                "uploads",
                format!("{STALLED} uploads stalled 1 byte short of 1 MiB"),
                self.receiver.backend(),
                paced("chaos.uploads", 200.0, 1),
            )
        }
    }

    fn sink(&self) -> &dyn Sink {
        &*self.receiver
    }

    /// The uploads, held and then dropped before the load.
    fn before_load(&mut self, run: &mut Run<'_>) -> Result<(), String> {
        let collector = run.collector()?;
        let addr = collector.addr;
        self.idle = collector.rss_kib().unwrap_or(0);
        let head = format!(
            "POST /events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {DECLARED}\r\n\r\n"
        );
        let part = vec![b' '; DECLARED - 1];
        let mut held = Vec::new();
        for _ in 0..STALLED {
            let mut stream =
                TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let sent = stream.write_all(head.as_bytes()).is_ok() && stream.write_all(&part).is_ok();
            let mut answer = [0u8; 12];
            match stream.read(&mut answer) {
                Ok(n) if n > 0 => self.refused += 1,
                _ if !sent => self.refused += 1,
                _ => held.push(stream),
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        self.peak = collector.peak_rss_kib().unwrap_or(0);
        run.peak_rss_kib = Some(self.peak);
        self.holding = held.len();
        drop(held);
        Ok(())
    }

    fn disturb(&mut self, _run: &mut Run<'_>) -> Result<(), String> {
        std::thread::sleep(Duration::from_secs(2));
        Ok(())
    }

    fn check(&mut self, row: &mut Row, end: &End<'_>) -> Result<(), String> {
        let (idle, peak) = (self.idle, self.peak);
        row.notes.push(format!(
            "{} uploads held, {} refused with 503 before their body was read; RSS {} MiB idle, {} MiB at the peak",
            self.holding,
            self.refused,
            idle / 1024,
            peak / 1024
        ));
        let budget_kib = 64 * 1024;
        if peak > idle + budget_kib + SLACK_KIB {
            row.failures.push(format!(
                "peak RSS {peak} KiB over {idle} KiB idle + {budget_kib} KiB of bodies + {SLACK_KIB} KiB"
            ));
        }
        if end.report.accepted.is_empty() {
            row.failures
                .push("nothing accepted once the uploads were gone".to_owned());
        }
        Ok(())
    }
}
