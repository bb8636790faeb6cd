//! Wall-clock timers for the engine: one task sleeps until the earliest deadline and hands due
//! timers to the writer. No polling: it wakes only for a deadline or a new timer.

use crate::writer::WriteCmd;
use keptn_engine::{Millis, Timer};
use std::collections::BTreeMap;
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct TimerHandle {
    tx: mpsc::UnboundedSender<(Millis, Timer)>,
}

impl TimerHandle {
    pub fn arm(&self, at: Millis, timer: Timer) {
        let _ = self.tx.send((at, timer));
    }
}

pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

pub fn spawn(writer: mpsc::WeakSender<WriteCmd>) -> TimerHandle {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Millis, Timer)>();
    tokio::spawn(async move {
        let mut pending: BTreeMap<(Millis, u64), Timer> = BTreeMap::new();
        let mut seq = 0u64;
        loop {
            let next = pending.keys().next().map(|(at, _)| *at);
            let sleep = async {
                match next {
                    Some(at) => {
                        let wait = (at - now_ms()).max(0) as u64;
                        tokio::time::sleep(std::time::Duration::from_millis(wait)).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some((at, timer)) => { seq += 1; pending.insert((at, seq), timer); }
                    None => return,
                },
                _ = sleep => {
                    let now = now_ms();
                    while let Some(entry) = pending.first_entry() {
                        if entry.key().0 > now { break; }
                        let timer = entry.remove();
                        let Some(writer) = writer.upgrade() else { return };
                        if writer.send(WriteCmd::Timer(timer)).await.is_err() { return; }
                    }
                }
            }
        }
    });
    TimerHandle { tx }
}
