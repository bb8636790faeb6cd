//! Query parameters shared by list endpoints: keptn's pagination (`pageSize`, default 20, and
//! `nextPageKey`, an offset, a string or a number as keptn's model of the list has it; 0 = no more) and ISO 8601 time filters.

use crate::error::ApiError;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageParams {
    pub page_size: Option<String>,
    pub next_page_key: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

impl Page {
    pub fn parse(size: Option<&str>, key: Option<&str>, max: i64) -> Result<Page, ApiError> {
        let limit = match size.filter(|s| !s.is_empty()) {
            None => 20,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ApiError::bad_request(format!("pageSize {s:?} must be a number from 1 to {max}")))?,
        };
        let offset = match key.filter(|s| !s.is_empty()) {
            None => 0,
            Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::bad_request(format!("nextPageKey {s:?} is invalid; pass the value of a previous response"))
            })?,
        };
        Ok(Page { offset, limit })
    }

    pub fn from(p: &PageParams, max: i64) -> Result<Page, ApiError> {
        Page::parse(p.page_size.as_deref(), p.next_page_key.as_deref(), max)
    }

    /// The next page key for a result of `total` items: "0" when this was the last page.
    pub fn next_key(&self, total: i64) -> String {
        self.next_offset(total).to_string()
    }

    /// The same as a number, for the lists whose keptn model has an integer `nextPageKey`
    /// (`models.SequenceStates`, `models.GetLogsResponse`: keptn's Go clients refuse a string).
    pub fn next_offset(&self, total: i64) -> i64 {
        let next = self.offset.saturating_add(self.limit);
        if next < total { next } else { 0 }
    }

    pub fn slice<T: Clone>(&self, all: &[T]) -> Vec<T> {
        all.iter().skip(self.offset as usize).take(self.limit as usize).cloned().collect()
    }
}

/// An optional ISO 8601 time filter (`fromTime`, `beforeTime`) as epoch milliseconds.
pub fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    match value.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => crate::writer::parse_time(s).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!("{name} {s:?} is not an ISO 8601 time; use e.g. 2023-12-01T10:00:00.000Z"))
        }),
    }
}
