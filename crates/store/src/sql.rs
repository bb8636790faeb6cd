//! A tiny builder for queries with optional filters: SQL text plus `$n` arguments.
//! Column names and operators come from this crate only; values are always bound.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Executor};

#[derive(Debug, Clone)]
enum Arg {
    Str(String),
    Int(i64),
}

#[derive(Debug, Clone)]
pub(crate) struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql { text: text.to_owned(), args: Vec::new() }
    }

    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Binds a string and returns its placeholder.
    pub fn str(&mut self, value: &str) -> String {
        self.args.push(Arg::Str(value.to_owned()));
        format!("${}", self.args.len())
    }

    pub fn int(&mut self, value: i64) -> String {
        self.args.push(Arg::Int(value));
        format!("${}", self.args.len())
    }

    /// ` AND col = $n` when a value is given.
    pub fn eq(&mut self, col: &str, value: Option<&str>) -> &mut Sql {
        if let Some(v) = value {
            let p = self.str(v);
            self.text.push_str(&format!(" AND {col} = {p}"));
        }
        self
    }

    /// ` AND col <op> $n` when a value is given.
    pub fn cmp(&mut self, col: &str, op: &str, value: Option<i64>) -> &mut Sql {
        if let Some(v) = value {
            let p = self.int(v);
            self.text.push_str(&format!(" AND {col} {op} {p}"));
        }
        self
    }

    /// ` AND col IN ($n, ...)`; an empty list matches nothing.
    pub fn in_list(&mut self, col: &str, values: &[String]) -> &mut Sql {
        if values.is_empty() {
            self.text.push_str(" AND 1 = 0");
            return self;
        }
        let ps: Vec<String> = values.iter().map(|v| self.str(v)).collect();
        self.text.push_str(&format!(" AND {col} IN ({})", ps.join(", ")));
        self
    }

    /// ` LIMIT $n OFFSET $m`; a limit ≤ 0 means no limit, a negative offset counts as 0.
    pub fn page(&mut self, offset: i64, limit: i64) -> &mut Sql {
        let l = self.int(if limit <= 0 { i64::MAX } else { limit });
        let o = self.int(offset.max(0));
        self.text.push_str(&format!(" LIMIT {l} OFFSET {o}"));
        self
    }

    pub fn query(&self) -> Query<'static, Any, AnyArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.text.clone()));
        for arg in &self.args {
            q = match arg {
                Arg::Str(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }

    pub async fn fetch_all<'e, E>(&self, ex: E) -> Result<Vec<AnyRow>, sqlx::Error>
    where
        E: Executor<'e, Database = Any>,
    {
        self.query().fetch_all(ex).await
    }

    /// Runs `SELECT COUNT(*) FROM (<this query>) counted`.
    pub async fn count<'e, E>(&self, ex: E) -> Result<i64, sqlx::Error>
    where
        E: Executor<'e, Database = Any>,
    {
        let c = Sql { text: format!("SELECT COUNT(*) FROM ({}) counted", self.text), args: self.args.clone() };
        let row = c.query().fetch_one(ex).await?;
        sqlx::Row::try_get(&row, 0)
    }
}
