//! Fault injection for the DbActor's own tests (`tests/it/resilience.rs`): a unit whose code
//! panics and one that runs far past any deadline. Units can only be defined in `src/db`, so
//! the tests' faults live here; nothing in the gateway sends them.

use diesel_async::RunQueryDsl;

use crate::unit_of_work;

unit_of_work! {
    /// A unit of work whose own code panics.
    Explodes {} -> (),
    "test.explodes", Write, transactional = true,
    |_this, _conn| {
        panic!("a bug inside a unit of work")
    }
}

unit_of_work! {
    /// A unit that runs far past any deadline, inside a transaction.
    Sleeps {} -> (),
    "test.sleeps", Write, transactional = true,
    |_this, conn| {
        match conn.inner {
            super::Conn::Pg(c) => {
                // Lift the server-side backstop so only the DbActor's deadline applies.
                diesel::sql_query("SET LOCAL statement_timeout = 0")
                    .execute(c)
                    .await?;
                diesel::sql_query("SELECT pg_sleep(60)").execute(c).await?;
            }
            super::Conn::Sqlite(c) => {
                diesel::sql_query(
                    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000000) \
                     SELECT count(*) FROM n",
                )
                .execute(c)
                .await?;
            }
        }
        Ok(())
    }
}
