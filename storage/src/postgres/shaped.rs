//! Multi-row statements shaped to their batch: a column whose value is the
//! same in every row (an instance id, `attempt = 1`, an error that is null)
//! is bound once as a value instead of as an array, so Postgres unpacks
//! only the arrays that vary. The statement text follows the batch's shape;
//! the few shapes a writer makes stay prepared in each connection's cache.

use std::fmt::Write as _;

use sqlx::postgres::{PgArguments, Postgres};
use sqlx::{Arguments, Encode, Type};

use crate::codec::Row;

/// The columns of an execution row with their Postgres types, in the order
/// [`Shaped::rows`] binds them.
const COLUMNS: [(&str, &str); 15] = [
    ("job_id", "text"),
    ("execution_id", "uuid"),
    ("attempt", "int4"),
    ("status", "text"),
    ("scheduled_at", "timestamptz"),
    ("started_at", "timestamptz"),
    ("completed_at", "timestamptz"),
    ("duration_ms", "int8"),
    ("error", "text"),
    ("error_kind", "text"),
    ("result", "jsonb"),
    ("metrics", "jsonb"),
    ("instance_id", "text"),
    ("kind", "text"),
    ("fence", "int8"),
];

/// A batch's rows as bound arguments, with the select list and the
/// `UNNEST` that read them back as rows.
pub(crate) struct Shaped {
    args: PgArguments,
    /// Per column, its expression: `u.<name>` or `$n::<type>`.
    select: Vec<String>,
    /// `$n::<type>[]` of each column bound as an array.
    arrays: Vec<String>,
    /// The names of the arrays' columns, for the `UNNEST` alias.
    names: Vec<&'static str>,
    /// The parameters bound so far.
    bound: usize,
}

impl Shaped {
    /// The rows' 15 columns, each as one value when every row has the same.
    pub(crate) fn rows(rows: &[&Row]) -> Result<Shaped, sqlx::Error> {
        let mut s = Shaped {
            args: PgArguments::default(),
            select: Vec::with_capacity(COLUMNS.len() + 1),
            arrays: Vec::with_capacity(COLUMNS.len() + 1),
            names: Vec::with_capacity(COLUMNS.len() + 1),
            bound: 0,
        };
        let col = |i: usize| COLUMNS[i];
        s.column(col(0), rows, |r| &*r.job_id)?;
        // Always an array: a key is distinct per row, and `UNNEST` needs one.
        let ids = rows.iter().map(|r| super::worker::uuid(r.execution_id)).collect();
        s.array(COLUMNS[1].0, COLUMNS[1].1, ids)?;
        s.column(col(2), rows, |r| r.attempt)?;
        s.column(col(3), rows, |r| r.status.as_str())?;
        s.column(col(4), rows, |r| r.scheduled_at)?;
        s.column(col(5), rows, |r| r.started_at)?;
        s.column(col(6), rows, |r| r.completed_at)?;
        s.column(col(7), rows, |r| r.duration_ms)?;
        s.column(col(8), rows, |r| r.error.as_deref())?;
        s.column(col(9), rows, |r| r.error_kind)?;
        s.column(col(10), rows, |r| r.result.as_deref())?;
        s.column(col(11), rows, |r| r.metrics.as_deref())?;
        s.column(col(12), rows, |r| &*r.instance_id)?;
        s.column(col(13), rows, |r| r.kind)?;
        s.column(col(14), rows, |r| r.fence)?;
        Ok(s)
    }

    /// One more column, `flag`, bound as an array of one value a row.
    pub(crate) fn flags(mut self, flags: Vec<bool>) -> Result<Shaped, sqlx::Error> {
        self.array("flag", "bool", flags)?;
        Ok(self)
    }

    /// `SELECT <the columns> FROM UNNEST(<the arrays>) AS u(<names>)`,
    /// with `flag` after the 15 columns when bound.
    pub(crate) fn select(&self) -> String {
        let mut sql = String::with_capacity(600);
        sql.push_str("SELECT ");
        for (i, e) in self.select.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(e);
        }
        let _ =
            write!(sql, " FROM UNNEST({}) AS u({})", self.arrays.join(", "), self.names.join(", "));
        sql
    }

    /// The bound arguments, for `sqlx::query_with`.
    pub(crate) fn arguments(self) -> PgArguments {
        self.args
    }

    /// The column `value` reads from each row: one value when every row has
    /// the same (found before anything is collected), else an array.
    fn column<'a, 'r: 'a, T>(
        &mut self,
        (name, ty): (&'static str, &str),
        rows: &[&'r Row],
        value: impl Fn(&'r Row) -> T,
    ) -> Result<(), sqlx::Error>
    where
        T: PartialEq + Encode<'a, Postgres> + Type<Postgres> + 'a,
        Vec<T>: Encode<'a, Postgres> + Type<Postgres>,
    {
        let mut values = rows.iter().map(|r| value(r));
        match values.next() {
            Some(first) if values.all(|v| v == first) => {
                self.bind(first)?;
                self.select.push(format!("${}::{ty} AS {name}", self.bound));
                Ok(())
            }
            _ => self.array(name, ty, rows.iter().map(|r| value(r)).collect()),
        }
    }

    fn array<'a, T: 'a>(
        &mut self,
        name: &'static str,
        ty: &str,
        values: Vec<T>,
    ) -> Result<(), sqlx::Error>
    where
        Vec<T>: Encode<'a, Postgres> + Type<Postgres>,
    {
        self.bind(values)?;
        self.arrays.push(format!("${}::{ty}[]", self.bound));
        self.names.push(name);
        self.select.push(format!("u.{name}"));
        Ok(())
    }

    fn bind<'a, T>(&mut self, value: T) -> Result<(), sqlx::Error>
    where
        T: Encode<'a, Postgres> + Type<Postgres> + 'a,
    {
        Arguments::<'a>::add(&mut self.args, value).map_err(sqlx::Error::Encode)?;
        self.bound += 1;
        Ok(())
    }
}
