//! The wall clock, read only at the shell: the engine gets `now` as an input.

use keptn_engine::Millis;

pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}
