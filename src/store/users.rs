//! Users: who uses Nudge, the dedicated number each one texts, and their SMS opt-out.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use super::sql::{ROWS_PER_STATEMENT, now, parse, write_error};
use super::{Pool, Result, Store, StoreError, UserId, sqlite_reads, with_pool, with_user};

/// Languages Nudge answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Fr,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Fr => "fr",
        }
    }
}

impl FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "en" => Ok(Language::En),
            "fr" => Ok(Language::Fr),
            other => Err(format!("unknown language {other:?} (expected en or fr)")),
        }
    }
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Standard,
    Premium,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Standard => "standard",
            Role::Premium => "premium",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "standard" => Ok(Role::Standard),
            "premium" => Ok(Role::Premium),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

/// A person who uses Nudge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: UserId,
    pub display_name: String,
    /// The user's own phone, E.164. Only texts from it reach this user's data. `None` for a
    /// person who registered on the web and has not linked a phone yet.
    pub phone: Option<String>,
    /// The dedicated Twilio number this user texts, E.164; `None` until one is assigned.
    pub number: Option<String>,
    pub language: Language,
    /// IANA time zone name, e.g. `Europe/Paris`.
    pub time_zone: String,
    pub role: Role,
    /// Set by STOP and friends; no outbound SMS of any kind while true.
    pub sms_opted_out: bool,
    pub created_at: DateTime<Utc>,
}

/// What `admin user add` gives to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub display_name: String,
    pub phone: String,
    pub number: String,
    pub language: Language,
    pub time_zone: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: Uuid,
    display_name: String,
    phone: Option<String>,
    number: Option<String>,
    language: String,
    time_zone: String,
    role: String,
    sms_opted_out: bool,
    created_at: DateTime<Utc>,
}

impl UserRow {
    /// The row as SQLite's reader threads read it (`sqlite_reads`).
    pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: sqlite_reads::uuid(row, 0, "id")?,
            display_name: sqlite_reads::column(row, 1, "display_name")?,
            phone: sqlite_reads::column(row, 2, "phone")?,
            number: sqlite_reads::column(row, 3, "number")?,
            language: sqlite_reads::column(row, 4, "language")?,
            time_zone: sqlite_reads::column(row, 5, "time_zone")?,
            role: sqlite_reads::column(row, 6, "role")?,
            sms_opted_out: sqlite_reads::column(row, 7, "sms_opted_out")?,
            created_at: sqlite_reads::time(row, 8, "created_at")?,
        })
    }
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<Self> {
        Ok(User {
            id: UserId(row.id),
            display_name: row.display_name,
            phone: row.phone,
            number: row.number,
            language: parse("users.language", &row.language)?,
            time_zone: row.time_zone,
            role: parse("users.role", &row.role)?,
            sms_opted_out: row.sms_opted_out,
            created_at: row.created_at,
        })
    }
}

macro_rules! user_select {
    () => {
        "SELECT u.id, u.display_name, u.phone, n.number, u.language, u.time_zone, \
         u.role, u.sms_opted_out, u.created_at \
         FROM users u LEFT JOIN user_phone_numbers n ON n.user_id = u.id"
    };
}

const INSERT_USER: &str = "INSERT INTO users \
     (id, display_name, phone, language, time_zone, role, sms_opted_out, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const INSERT_NUMBER: &str =
    "INSERT INTO user_phone_numbers (number, user_id, created_at) VALUES ($1, $2, $3)";
/// One number per user for now: the oldest one is the user's.
pub(super) const USER_BY_ID: &str = concat!(
    user_select!(),
    " WHERE u.id = $1 ORDER BY n.created_at, n.number LIMIT 1"
);
const USER_BY_NUMBER: &str = concat!(user_select!(), " WHERE n.number = $1");
const SET_SMS_OPT_OUT: &str = "UPDATE users SET sms_opted_out = $2 WHERE id = $1";

impl Store {
    /// Creates a user and their dedicated number in one transaction.
    /// A phone or number already taken is `Conflict("phone")` / `Conflict("number")`.
    #[tracing::instrument(skip_all)]
    pub async fn create_user(&self, new: &NewUser) -> Result<User> {
        let user = User {
            id: UserId::new(),
            display_name: new.display_name.clone(),
            phone: Some(new.phone.clone()),
            number: Some(new.number.clone()),
            language: new.language,
            time_zone: new.time_zone.clone(),
            role: Role::default(),
            sms_opted_out: false,
            created_at: now(),
        };
        with_user!(self, user.id, atomic conn => {
            sqlx::query(INSERT_USER)
                .bind(user.id.0)
                .bind(&user.display_name)
                .bind(&new.phone)
                .bind(user.language.as_str())
                .bind(&user.time_zone)
                .bind(user.role.as_str())
                .bind(user.sms_opted_out)
                .bind(user.created_at)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
            sqlx::query(INSERT_NUMBER)
                .bind(&new.number)
                .bind(user.id.0)
                .bind(user.created_at)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
        });
        Ok(user)
    }

    #[tracing::instrument(skip_all)]
    pub async fn user(&self, id: UserId) -> Result<User> {
        let row = with_user!(self, id, conn => {
            sqlx::query_as::<_, UserRow>(USER_BY_ID)
                .bind(id.0)
                .fetch_optional(&mut *conn)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The owner of a dedicated Twilio number (`NotFound` if nobody has it).
    #[tracing::instrument(skip_all)]
    pub async fn user_by_number(&self, number: &str) -> Result<User> {
        self.one_user(USER_BY_NUMBER, number).await
    }

    #[tracing::instrument(skip_all)]
    pub async fn set_sms_opt_out(&self, user: UserId, opted_out: bool) -> Result<()> {
        let changed = with_user!(self, user, conn => {
            sqlx::query(SET_SMS_OPT_OUT)
                .bind(user.0)
                .bind(opted_out)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The user `statement` finds by its one parameter, the text `key`; `NotFound` if none.
    /// Across users, as the owner: it finds whose a number is, before any user is known. On a
    /// SQLite file it runs where its caller runs, on a connection kept for such reads (no
    /// hand-off, where the pool's connection would take four with its ping; see
    /// `sqlite_reads`).
    async fn one_user(&self, statement: &'static str, key: &str) -> Result<User> {
        let row = match &self.readers {
            Some(readers) => {
                let key = key.to_owned();
                readers
                    .run_here(move |tx| {
                        tx.prepare_cached(statement)?
                            .query_row([key], UserRow::from_sqlite)
                            .optional()
                    })
                    .await?
            }
            None => with_pool!(self, pool => {
                sqlx::query_as::<_, UserRow>(statement)
                    .bind(key)
                    .fetch_optional(pool)
                    .await?
            }),
        };
        row.ok_or(StoreError::NotFound)?.try_into()
    }
}

/// SQLite: the rows come as `VALUES`, whose columns SQLite names `column1`, `column2`, …;
/// `WHERE` before `ON CONFLICT` keeps the parser from reading `ON` as a join constraint.
const SQLITE_CREATE_USERS_HEAD: &str = "INSERT INTO users \
     (id, display_name, phone, language, time_zone, created_at) \
     SELECT column1, column2, column3, column4, column5, column7 FROM (";
const SQLITE_CREATE_USERS_TAIL: &str = ") AS v WHERE NOT EXISTS \
     (SELECT 1 FROM user_phone_numbers n WHERE n.number = v.column6) \
     ON CONFLICT (phone) DO NOTHING RETURNING id";
const PG_CREATE_USERS: &str = "INSERT INTO users \
     (id, display_name, phone, language, time_zone, created_at) \
     SELECT v.id, v.name, v.phone, v.language, v.tz, $7 \
     FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
     AS v(id, name, phone, language, tz, number) \
     WHERE NOT EXISTS (SELECT 1 FROM user_phone_numbers n WHERE n.number = v.number) \
     ON CONFLICT (phone) DO NOTHING RETURNING id";
const PG_CREATE_NUMBERS: &str = "INSERT INTO user_phone_numbers (number, user_id, created_at) \
     SELECT v.number, v.user_id, $3 FROM UNNEST($1::text[], $2::uuid[]) AS v(number, user_id)";

impl Store {
    /// Creates many users and their numbers at once, for bulk provisioning (benchmark
    /// populations, imports): one transaction and one multi-row statement per table for
    /// every [`ROWS_PER_STATEMENT`] users. A user whose phone or number is already taken is
    /// skipped, so running it again creates nothing twice. Returns the ids of the users
    /// created, in the order given.
    #[tracing::instrument(skip_all, fields(users = users.len()))]
    pub async fn create_users(&self, users: &[NewUser]) -> Result<Vec<UserId>> {
        let mut created = Vec::new();
        for chunk in users.chunks(ROWS_PER_STATEMENT) {
            let ids: Vec<Uuid> = chunk.iter().map(|_| UserId::new().0).collect();
            let at = now();
            let taken: Vec<Uuid> = match &self.pool {
                Pool::Sqlite(pool) => {
                    let mut tx = pool.begin().await?;
                    let mut statement = QueryBuilder::<Sqlite>::new(SQLITE_CREATE_USERS_HEAD);
                    statement.push_values(chunk.iter().zip(&ids), |mut row, (user, id)| {
                        row.push_bind(*id)
                            .push_bind(&user.display_name)
                            .push_bind(&user.phone)
                            .push_bind(user.language.as_str())
                            .push_bind(&user.time_zone)
                            .push_bind(&user.number)
                            .push_bind(at);
                    });
                    statement.push(SQLITE_CREATE_USERS_TAIL);
                    let taken: Vec<Uuid> = statement
                        .build_query_scalar()
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(write_error)?;
                    let numbers = numbers_of(chunk, &ids, &taken);
                    if !numbers.is_empty() {
                        let mut statement = QueryBuilder::<Sqlite>::new(
                            "INSERT INTO user_phone_numbers (number, user_id, created_at) ",
                        );
                        statement.push_values(numbers, |mut row, (number, id)| {
                            row.push_bind(number).push_bind(id).push_bind(at);
                        });
                        statement
                            .build()
                            .execute(&mut *tx)
                            .await
                            .map_err(write_error)?;
                    }
                    tx.commit().await?;
                    taken
                }
                Pool::Postgres(pool) => {
                    let mut tx = pool.begin().await?;
                    let column = |f: fn(&NewUser) -> &str| chunk.iter().map(f).collect::<Vec<_>>();
                    let taken: Vec<Uuid> = sqlx::query_scalar(PG_CREATE_USERS)
                        .bind(&ids)
                        .bind(column(|u| &u.display_name))
                        .bind(column(|u| &u.phone))
                        .bind(column(|u| u.language.as_str()))
                        .bind(column(|u| &u.time_zone))
                        .bind(column(|u| &u.number))
                        .bind(at)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(write_error)?;
                    let (numbers, owners): (Vec<&str>, Vec<Uuid>) =
                        numbers_of(chunk, &ids, &taken).into_iter().unzip();
                    if !numbers.is_empty() {
                        sqlx::query(PG_CREATE_NUMBERS)
                            .bind(numbers)
                            .bind(owners)
                            .bind(at)
                            .execute(&mut *tx)
                            .await
                            .map_err(write_error)?;
                    }
                    tx.commit().await?;
                    taken
                }
            };
            let taken: std::collections::HashSet<Uuid> = taken.into_iter().collect();
            created.extend(ids.into_iter().filter(|id| taken.contains(id)).map(UserId));
        }
        Ok(created)
    }
}

/// The numbers of the users of `chunk` that were created (their ids are in `created`).
fn numbers_of<'a>(chunk: &'a [NewUser], ids: &[Uuid], created: &[Uuid]) -> Vec<(&'a str, Uuid)> {
    let created: std::collections::HashSet<&Uuid> = created.iter().collect();
    chunk
        .iter()
        .zip(ids)
        .filter(|(_, id)| created.contains(id))
        .map(|(user, id)| (user.number.as_str(), *id))
        .collect()
}
