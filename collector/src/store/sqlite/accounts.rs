//! [`Accounts`] on SQLite (tables `users` and `ui_sessions`, schema version 3).

use super::SqliteStore;
use crate::store::{Accounts, SessionRecord, StoreError, UserRecord, UserRole};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

fn user_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<UserRecord> {
    let role: String = r.get(at + 2)?;
    Ok(UserRecord {
        id: r.get(at)?,
        name: r.get(at + 1)?,
        // The CHECK constraint admits only these two; anything else gets the lesser role.
        role: UserRole::parse(&role).unwrap_or(UserRole::Viewer),
        created_us: r.get(at + 3)?,
    })
}

impl Accounts for SqliteStore {
    fn add_user(
        &self,
        name: &str,
        role: UserRole,
        phc: &str,
        now_us: i64,
    ) -> Result<UserRecord, StoreError> {
        let mut c = self.writer();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists = tx
            .query_row("SELECT 1 FROM users WHERE name = ?1", params![name], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        if exists {
            return Err(StoreError::UserExists(name.to_owned()));
        }
        tx.execute(
            "INSERT INTO users (name, role, password, created_us) VALUES (?1, ?2, ?3, ?4)",
            params![name, role.as_str(), phc, now_us],
        )?;
        let rec = tx.query_row(
            "SELECT id, name, role, created_us FROM users WHERE name = ?1",
            params![name],
            |r| user_row(r, 0),
        )?;
        tx.commit()?;
        Ok(rec)
    }

    fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let c = self.reader();
        let mut st = c.prepare("SELECT id, name, role, created_us FROM users ORDER BY name")?;
        let rows = st.query_map([], |r| user_row(r, 0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn user_by_name(&self, name: &str) -> Result<Option<(UserRecord, String)>, StoreError> {
        let c = self.reader();
        Ok(c.query_row(
            "SELECT id, name, role, created_us, password FROM users WHERE name = ?1",
            params![name],
            |r| Ok((user_row(r, 0)?, r.get(4)?)),
        )
        .optional()?)
    }

    fn remove_user(&self, name: &str) -> Result<UserRecord, StoreError> {
        let mut c = self.writer();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rec = tx
            .query_row(
                "SELECT id, name, role, created_us FROM users WHERE name = ?1",
                params![name],
                |r| user_row(r, 0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoUser(name.to_owned()))?;
        tx.execute("DELETE FROM users WHERE id = ?1", params![rec.id])?;
        tx.commit()?;
        Ok(rec)
    }

    fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        now_us: i64,
    ) -> Result<(), StoreError> {
        let c = self.writer();
        c.execute(
            "INSERT INTO ui_sessions (id_hash, user_id, csrf, created_us, last_us)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            params![id_hash, user_id, csrf, now_us],
        )?;
        Ok(())
    }

    fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let c = self.reader();
        Ok(c.query_row(
            "SELECT u.id, u.name, u.role, u.created_us, s.csrf, s.created_us, s.last_us
             FROM ui_sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?1",
            params![id_hash],
            |r| {
                Ok(SessionRecord {
                    id_hash: id_hash.to_owned(),
                    user: user_row(r, 0)?,
                    csrf: r.get(4)?,
                    created_us: r.get(5)?,
                    last_us: r.get(6)?,
                })
            },
        )
        .optional()?)
    }

    fn touch_session(&self, id_hash: &str, now_us: i64) -> Result<(), StoreError> {
        let c = self.writer();
        c.execute(
            "UPDATE ui_sessions SET last_us = max(last_us, ?2) WHERE id_hash = ?1",
            params![id_hash, now_us],
        )?;
        Ok(())
    }

    fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let c = self.writer();
        c.execute(
            "DELETE FROM ui_sessions WHERE id_hash = ?1",
            params![id_hash],
        )?;
        Ok(())
    }

    fn purge_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64, StoreError> {
        let c = self.writer();
        let n = c.execute(
            "DELETE FROM ui_sessions WHERE last_us < ?1 OR created_us < ?2",
            params![idle_before, created_before],
        )?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_sessions_round_trip_and_removal_ends_sessions() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(d.path()).unwrap();
        let u = s
            .add_user("sato", UserRole::Admin, "$argon2id$x", 10)
            .unwrap();
        assert_eq!(u.role, UserRole::Admin);
        assert!(matches!(
            s.add_user("sato", UserRole::Viewer, "$argon2id$y", 11),
            Err(StoreError::UserExists(n)) if n == "sato"
        ));
        s.add_user("abe", UserRole::Viewer, "$argon2id$z", 12)
            .unwrap();
        let names: Vec<String> = s.users().unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(names, ["abe", "sato"]);
        let (rec, phc) = s.user_by_name("sato").unwrap().unwrap();
        assert_eq!((rec.id, phc.as_str()), (u.id, "$argon2id$x"));

        s.create_session("h1", u.id, "tok", 100).unwrap();
        s.touch_session("h1", 200).unwrap();
        s.touch_session("h1", 150).unwrap(); // never goes back
        let sess = s.session("h1").unwrap().unwrap();
        assert_eq!((sess.created_us, sess.last_us), (100, 200));
        assert_eq!(sess.user.name, "sato");
        assert!(s.session("h2").unwrap().is_none());

        // Idle and absolute expiry.
        s.create_session("h2", u.id, "tok2", 300).unwrap();
        assert_eq!(s.purge_sessions(250, 0).unwrap(), 1);
        assert!(s.session("h1").unwrap().is_none());
        assert_eq!(s.purge_sessions(0, 301).unwrap(), 1);

        s.create_session("h3", u.id, "tok3", 400).unwrap();
        s.remove_user("sato").unwrap();
        assert!(
            s.session("h3").unwrap().is_none(),
            "sessions go with the user"
        );
        assert!(matches!(s.remove_user("sato"), Err(StoreError::NoUser(_))));
    }
}
