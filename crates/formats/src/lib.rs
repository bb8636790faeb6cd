//! keptn's wire and file formats, with validation that names the field and the rule.
//! Pure: no I/O, no clock.

pub mod duration;
pub mod event;
pub mod event_type;
pub mod merge;
pub mod names;
pub mod shipyard;

pub use event::{KeptnEvent, TaskResult, TaskStatus};
pub use event_type::EventType;
pub use shipyard::Shipyard;
