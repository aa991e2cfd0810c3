//! What both SQL backends share: the private row types, the statements, the mapping of
//! database errors, and [`impl_store!`], which expands the one [`Store`](super::Store)
//! implementation over each backend's pool.
//!
//! SQLite accepts PostgreSQL's `$N` placeholders and `RETURNING`, so both backends run the
//! same statements. What differs stays in the backend's own file: how to connect, and how a
//! unique violation names what was duplicated.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::error::DatabaseError;
use uuid::Uuid;

use crate::store::{GroceryItem, Message, Result, SmsUsage, StoreError, Task, User, UserId};

/// Rows per multi-row `INSERT`: far below SQLite's 32,766 bound parameters.
pub(in crate::store) const ROWS_PER_STATEMENT: usize = 1_000;

/// The time a row is written, cut to microseconds (PostgreSQL's precision) so that what a
/// write returns equals what a later read gives, on both backends.
pub(in crate::store) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Turns the error of a write into a [`StoreError`]: a unique violation the backend can
/// name becomes `Conflict(field)`; a foreign-key violation means the row referred to (the
/// user, the message replied to) does not exist for this user, so `NotFound`.
pub(in crate::store) fn write_error(
    e: sqlx::Error,
    unique_field: fn(&dyn DatabaseError) -> Option<&'static str>,
) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation()
            && let Some(field) = unique_field(db.as_ref())
        {
            return StoreError::Conflict(field.to_owned());
        }
        if db.is_foreign_key_violation() {
            return StoreError::NotFound;
        }
    }
    StoreError::Database(e)
}

/// SMS segments as stored (a SQL `INTEGER`).
pub(in crate::store) fn segments_column(segments: u32) -> Result<i32> {
    i32::try_from(segments).map_err(|e| StoreError::Database(sqlx::Error::Encode(e.into())))
}

fn parse<T: FromStr<Err = String>>(column: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|e: String| StoreError::Corrupt(format!("{column}: {e}")))
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct UserRow {
    id: Uuid,
    display_name: String,
    phone: String,
    number: String,
    language: String,
    time_zone: String,
    role: String,
    sms_opted_out: bool,
    created_at: DateTime<Utc>,
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

#[derive(sqlx::FromRow)]
pub(in crate::store) struct MessageRow {
    id: i64,
    user_id: Uuid,
    channel: String,
    direction: String,
    body: String,
    provider_message_id: Option<String>,
    in_reply_to: Option<i64>,
    created_at: DateTime<Utc>,
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(row: MessageRow) -> Result<Self> {
        Ok(Message {
            id: row.id,
            user_id: UserId(row.user_id),
            channel: parse("messages.channel", &row.channel)?,
            direction: parse("messages.direction", &row.direction)?,
            body: row.body,
            provider_message_id: row.provider_message_id,
            in_reply_to: row.in_reply_to,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct SmsUsageRow {
    id: i64,
    user_id: Uuid,
    message_id: Option<i64>,
    direction: String,
    segments: i32,
    encoding: String,
    estimated_cost_micros: i64,
    created_at: DateTime<Utc>,
}

impl TryFrom<SmsUsageRow> for SmsUsage {
    type Error = StoreError;
    fn try_from(row: SmsUsageRow) -> Result<Self> {
        Ok(SmsUsage {
            id: row.id,
            user_id: UserId(row.user_id),
            message_id: row.message_id,
            direction: parse("sms_usage_logs.direction", &row.direction)?,
            segments: u32::try_from(row.segments)
                .map_err(|e| StoreError::Corrupt(format!("sms_usage_logs.segments: {e}")))?,
            encoding: parse("sms_usage_logs.encoding", &row.encoding)?,
            estimated_cost_micros: row.estimated_cost_micros,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct TaskRow {
    id: i64,
    title: String,
    done: bool,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

impl From<TaskRow> for Task {
    fn from(row: TaskRow) -> Self {
        Task {
            id: row.id,
            title: row.title,
            done: row.done,
            created_at: row.created_at,
            completed_at: row.completed_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct GroceryRow {
    id: i64,
    name: String,
    checked: bool,
    created_at: DateTime<Utc>,
}

impl GroceryRow {
    pub(in crate::store) fn id(&self) -> i64 {
        self.id
    }
}

impl From<GroceryRow> for GroceryItem {
    fn from(row: GroceryRow) -> Self {
        GroceryItem {
            id: row.id,
            name: row.name,
            checked: row.checked,
            created_at: row.created_at,
        }
    }
}

/// The statements, in the `$N` placeholder syntax both databases accept. Every statement
/// on a user's rows is scoped by `user_id = $1`.
pub(in crate::store) mod statements {
    macro_rules! user_select {
        () => {
            "SELECT u.id, u.display_name, u.phone, n.number, u.language, u.time_zone, \
             u.role, u.sms_opted_out, u.created_at \
             FROM users u JOIN user_phone_numbers n ON n.user_id = u.id"
        };
    }
    macro_rules! message_columns {
        () => {
            "id, user_id, channel, direction, body, provider_message_id, in_reply_to, \
             created_at"
        };
    }
    macro_rules! task_columns {
        () => {
            "id, title, done, created_at, completed_at"
        };
    }
    macro_rules! grocery_columns {
        () => {
            "id, name, checked, created_at"
        };
    }

    pub const PING: &str = "SELECT 1";

    pub const INSERT_USER: &str = "INSERT INTO users \
         (id, display_name, phone, language, time_zone, role, sms_opted_out, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    pub const INSERT_NUMBER: &str =
        "INSERT INTO user_phone_numbers (number, user_id, created_at) VALUES ($1, $2, $3)";
    /// One number per user for now: the oldest one is the user's.
    pub const USER_BY_ID: &str = concat!(
        user_select!(),
        " WHERE u.id = $1 ORDER BY n.created_at, n.number LIMIT 1"
    );
    pub const USER_BY_NUMBER: &str = concat!(user_select!(), " WHERE n.number = $1");
    pub const SET_SMS_OPT_OUT: &str = "UPDATE users SET sms_opted_out = $2 WHERE id = $1";

    pub const INSERT_MESSAGE: &str = concat!(
        "INSERT INTO messages \
         (user_id, channel, direction, body, provider_message_id, in_reply_to, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
        message_columns!()
    );
    pub const MESSAGE_BY_PROVIDER_ID: &str = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE user_id = $1 AND provider_message_id = $2"
    );
    pub const REPLY_TO: &str = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE user_id = $1 AND in_reply_to = $2 AND direction = $3 \
         ORDER BY id LIMIT 1"
    );
    /// Newest first; the caller turns the page around.
    pub const RECENT_MESSAGES: &str = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
    );

    /// Followed by `VALUES (…), (…)` built per batch.
    pub const INSERT_SMS_USAGE_ROWS: &str = "INSERT INTO sms_usage_logs \
         (user_id, message_id, direction, segments, encoding, estimated_cost_micros, created_at) ";
    /// Inserts nothing when `$2` names a message that is not this user's.
    pub const RECORD_SMS_USAGE: &str = "INSERT INTO sms_usage_logs \
         (user_id, message_id, direction, segments, encoding, estimated_cost_micros, created_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7 \
         WHERE $2 IS NULL OR EXISTS (SELECT 1 FROM messages WHERE user_id = $1 AND id = $2)";
    pub const SMS_USAGE: &str = "SELECT id, user_id, message_id, direction, segments, \
         encoding, estimated_cost_micros, created_at \
         FROM sms_usage_logs WHERE user_id = $1 ORDER BY id";

    pub const INSERT_TASK: &str = concat!(
        "INSERT INTO tasks (user_id, title, done, created_at) VALUES ($1, $2, $3, $4) \
         RETURNING ",
        task_columns!()
    );
    pub const TASKS_BY_DONE: &str = concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE user_id = $1 AND done = $2 ORDER BY id"
    );
    /// Completing twice keeps the first completion time.
    pub const COMPLETE_TASK: &str = concat!(
        "UPDATE tasks SET done = $3, completed_at = COALESCE(completed_at, $4) \
         WHERE user_id = $1 AND id = $2 RETURNING ",
        task_columns!()
    );

    /// Followed by `VALUES (…), (…)` built per batch, then [`GROCERY_RETURNING`].
    pub const INSERT_GROCERY_ROWS: &str =
        "INSERT INTO grocery_items (user_id, name, checked, created_at) ";
    pub const GROCERY_RETURNING: &str = concat!(" RETURNING ", grocery_columns!());
    pub const GROCERIES_BY_CHECKED: &str = concat!(
        "SELECT ",
        grocery_columns!(),
        " FROM grocery_items WHERE user_id = $1 AND checked = $2 ORDER BY id"
    );
    pub const CHECK_GROCERY: &str = concat!(
        "UPDATE grocery_items SET checked = $3 WHERE user_id = $1 AND id = $2 RETURNING ",
        grocery_columns!()
    );
    pub const CLEAR_GROCERIES: &str = "DELETE FROM grocery_items WHERE user_id = $1";
}

/// Implements [`Store`](super::Store) for `$store` (a struct with a `pool: sqlx::Pool<$db>`
/// field) with the shared SQL. `$unique_field` names the field of a unique violation
/// (`fn(&dyn DatabaseError) -> Option<&'static str>`), the one thing the backends spell
/// differently in their errors.
macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:expr, $unique_field:path) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::{Database, QueryBuilder};

            use $crate::store::sql::{
                self as s, GroceryRow, MessageRow, SmsUsageRow, TaskRow, UserRow, statements as sql,
            };
            use $crate::store::{
                Direction, GroceryItem, Message, NewMessage, NewSmsUsage, NewUser, Result, Role,
                SmsUsage, Store, StoreError, Task, User, UserId,
            };

            type Connection = <$db as Database>::Connection;

            fn write_error(e: sqlx::Error) -> StoreError {
                s::write_error(e, $unique_field)
            }

            async fn insert_message(
                conn: &mut Connection,
                user: UserId,
                message: &NewMessage,
            ) -> Result<Message> {
                sqlx::query_as::<_, MessageRow>(sql::INSERT_MESSAGE)
                    .bind(user.0)
                    .bind(message.channel.as_str())
                    .bind(message.direction.as_str())
                    .bind(&message.body)
                    .bind(message.provider_message_id.as_deref())
                    .bind(message.in_reply_to)
                    .bind(s::now())
                    .fetch_one(conn)
                    .await
                    .map_err(write_error)?
                    .try_into()
            }

            /// One multi-row statement per [`s::ROWS_PER_STATEMENT`] usage rows.
            async fn insert_sms_usage(
                conn: &mut Connection,
                user: UserId,
                message_id: i64,
                usage: &[NewSmsUsage],
            ) -> Result<()> {
                let rows = usage
                    .iter()
                    .map(|u| Ok((u, s::segments_column(u.segments)?)))
                    .collect::<Result<Vec<_>>>()?;
                let created_at = s::now();
                for chunk in rows.chunks(s::ROWS_PER_STATEMENT) {
                    let mut insert = QueryBuilder::<$db>::new(sql::INSERT_SMS_USAGE_ROWS);
                    insert.push_values(chunk, |mut row, (u, segments)| {
                        row.push_bind(user.0)
                            .push_bind(message_id)
                            .push_bind(u.direction.as_str())
                            .push_bind(*segments)
                            .push_bind(u.encoding.as_str())
                            .push_bind(u.estimated_cost_micros)
                            .push_bind(created_at);
                    });
                    insert
                        .build()
                        .execute(&mut *conn)
                        .await
                        .map_err(write_error)?;
                }
                Ok(())
            }

            /// One multi-row `INSERT … RETURNING` per [`s::ROWS_PER_STATEMENT`] names; the
            /// items come back in id order, which is the order given.
            async fn insert_groceries(
                conn: &mut Connection,
                user: UserId,
                names: &[String],
            ) -> Result<Vec<GroceryItem>> {
                let created_at = s::now();
                let mut items = Vec::with_capacity(names.len());
                for chunk in names.chunks(s::ROWS_PER_STATEMENT) {
                    let mut insert = QueryBuilder::<$db>::new(sql::INSERT_GROCERY_ROWS);
                    insert.push_values(chunk, |mut row, name| {
                        row.push_bind(user.0)
                            .push_bind(name.as_str())
                            .push_bind(false)
                            .push_bind(created_at);
                    });
                    insert.push(sql::GROCERY_RETURNING);
                    let mut rows = insert
                        .build_query_as::<GroceryRow>()
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(write_error)?;
                    rows.sort_by_key(GroceryRow::id);
                    items.extend(rows.into_iter().map(GroceryItem::from));
                }
                Ok(items)
            }

            #[async_trait]
            impl Store for $store {
                fn backend(&self) -> $crate::store::Backend {
                    $backend
                }

                #[tracing::instrument(skip_all)]
                async fn ping(&self) -> Result<()> {
                    sqlx::query(sql::PING).execute(&self.pool).await?;
                    Ok(())
                }

                #[tracing::instrument(skip_all)]
                async fn create_user(&self, new: &NewUser) -> Result<User> {
                    let user = User {
                        id: UserId::new(),
                        display_name: new.display_name.clone(),
                        phone: new.phone.clone(),
                        number: new.number.clone(),
                        language: new.language,
                        time_zone: new.time_zone.clone(),
                        role: Role::default(),
                        sms_opted_out: false,
                        created_at: s::now(),
                    };
                    let mut tx = self.pool.begin().await?;
                    sqlx::query(sql::INSERT_USER)
                        .bind(user.id.0)
                        .bind(&user.display_name)
                        .bind(&user.phone)
                        .bind(user.language.as_str())
                        .bind(&user.time_zone)
                        .bind(user.role.as_str())
                        .bind(user.sms_opted_out)
                        .bind(user.created_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(write_error)?;
                    sqlx::query(sql::INSERT_NUMBER)
                        .bind(&user.number)
                        .bind(user.id.0)
                        .bind(user.created_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(write_error)?;
                    tx.commit().await?;
                    Ok(user)
                }

                #[tracing::instrument(skip_all)]
                async fn user(&self, id: UserId) -> Result<User> {
                    sqlx::query_as::<_, UserRow>(sql::USER_BY_ID)
                        .bind(id.0)
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or(StoreError::NotFound)?
                        .try_into()
                }

                #[tracing::instrument(skip_all)]
                async fn user_by_number(&self, number: &str) -> Result<User> {
                    sqlx::query_as::<_, UserRow>(sql::USER_BY_NUMBER)
                        .bind(number)
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or(StoreError::NotFound)?
                        .try_into()
                }

                #[tracing::instrument(skip_all)]
                async fn set_sms_opt_out(&self, user: UserId, opted_out: bool) -> Result<()> {
                    let done = sqlx::query(sql::SET_SMS_OPT_OUT)
                        .bind(user.0)
                        .bind(opted_out)
                        .execute(&self.pool)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }

                #[tracing::instrument(skip_all)]
                async fn insert_message(
                    &self,
                    user: UserId,
                    message: &NewMessage,
                ) -> Result<Message> {
                    let mut conn = self.pool.acquire().await?;
                    insert_message(&mut conn, user, message).await
                }

                #[tracing::instrument(skip_all)]
                async fn insert_reply(
                    &self,
                    user: UserId,
                    reply: &NewMessage,
                    usage: &[NewSmsUsage],
                ) -> Result<Message> {
                    if usage.is_empty() {
                        return self.insert_message(user, reply).await;
                    }
                    let mut tx = self.pool.begin().await?;
                    let message = insert_message(&mut tx, user, reply).await?;
                    insert_sms_usage(&mut tx, user, message.id, usage).await?;
                    tx.commit().await?;
                    Ok(message)
                }

                #[tracing::instrument(skip_all)]
                async fn message_by_provider_id(
                    &self,
                    user: UserId,
                    provider_message_id: &str,
                ) -> Result<Option<Message>> {
                    sqlx::query_as::<_, MessageRow>(sql::MESSAGE_BY_PROVIDER_ID)
                        .bind(user.0)
                        .bind(provider_message_id)
                        .fetch_optional(&self.pool)
                        .await?
                        .map(Message::try_from)
                        .transpose()
                }

                #[tracing::instrument(skip_all)]
                async fn reply_to(&self, user: UserId, message_id: i64) -> Result<Option<Message>> {
                    sqlx::query_as::<_, MessageRow>(sql::REPLY_TO)
                        .bind(user.0)
                        .bind(message_id)
                        .bind(Direction::Outbound.as_str())
                        .fetch_optional(&self.pool)
                        .await?
                        .map(Message::try_from)
                        .transpose()
                }

                #[tracing::instrument(skip_all)]
                async fn recent_messages(&self, user: UserId, limit: u32) -> Result<Vec<Message>> {
                    let rows = sqlx::query_as::<_, MessageRow>(sql::RECENT_MESSAGES)
                        .bind(user.0)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                    rows.into_iter().rev().map(Message::try_from).collect()
                }

                #[tracing::instrument(skip_all)]
                async fn record_sms_usage(
                    &self,
                    user: UserId,
                    message_id: Option<i64>,
                    usage: &NewSmsUsage,
                ) -> Result<()> {
                    let done = sqlx::query(sql::RECORD_SMS_USAGE)
                        .bind(user.0)
                        .bind(message_id)
                        .bind(usage.direction.as_str())
                        .bind(s::segments_column(usage.segments)?)
                        .bind(usage.encoding.as_str())
                        .bind(usage.estimated_cost_micros)
                        .bind(s::now())
                        .execute(&self.pool)
                        .await
                        .map_err(write_error)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }

                #[tracing::instrument(skip_all)]
                async fn sms_usage(&self, user: UserId) -> Result<Vec<SmsUsage>> {
                    sqlx::query_as::<_, SmsUsageRow>(sql::SMS_USAGE)
                        .bind(user.0)
                        .fetch_all(&self.pool)
                        .await?
                        .into_iter()
                        .map(SmsUsage::try_from)
                        .collect()
                }

                #[tracing::instrument(skip_all)]
                async fn add_task(&self, user: UserId, title: &str) -> Result<Task> {
                    let row = sqlx::query_as::<_, TaskRow>(sql::INSERT_TASK)
                        .bind(user.0)
                        .bind(title)
                        .bind(false)
                        .bind(s::now())
                        .fetch_one(&self.pool)
                        .await
                        .map_err(write_error)?;
                    Ok(row.into())
                }

                #[tracing::instrument(skip_all)]
                async fn open_tasks(&self, user: UserId) -> Result<Vec<Task>> {
                    let rows = sqlx::query_as::<_, TaskRow>(sql::TASKS_BY_DONE)
                        .bind(user.0)
                        .bind(false)
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(Task::from).collect())
                }

                #[tracing::instrument(skip_all)]
                async fn complete_task(&self, user: UserId, task_id: i64) -> Result<Task> {
                    let row = sqlx::query_as::<_, TaskRow>(sql::COMPLETE_TASK)
                        .bind(user.0)
                        .bind(task_id)
                        .bind(true)
                        .bind(s::now())
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    Ok(row.into())
                }

                #[tracing::instrument(skip_all)]
                async fn add_groceries(
                    &self,
                    user: UserId,
                    names: &[String],
                ) -> Result<Vec<GroceryItem>> {
                    if names.is_empty() {
                        return Ok(Vec::new());
                    }
                    if names.len() <= s::ROWS_PER_STATEMENT {
                        // One statement is atomic on its own: no BEGIN/COMMIT round trips.
                        let mut conn = self.pool.acquire().await?;
                        return insert_groceries(&mut conn, user, names).await;
                    }
                    let mut tx = self.pool.begin().await?;
                    let items = insert_groceries(&mut tx, user, names).await?;
                    tx.commit().await?;
                    Ok(items)
                }

                #[tracing::instrument(skip_all)]
                async fn groceries(&self, user: UserId) -> Result<Vec<GroceryItem>> {
                    let rows = sqlx::query_as::<_, GroceryRow>(sql::GROCERIES_BY_CHECKED)
                        .bind(user.0)
                        .bind(false)
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(GroceryItem::from).collect())
                }

                #[tracing::instrument(skip_all)]
                async fn check_grocery(&self, user: UserId, item_id: i64) -> Result<GroceryItem> {
                    let row = sqlx::query_as::<_, GroceryRow>(sql::CHECK_GROCERY)
                        .bind(user.0)
                        .bind(item_id)
                        .bind(true)
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    Ok(row.into())
                }

                #[tracing::instrument(skip_all)]
                async fn clear_groceries(&self, user: UserId) -> Result<u64> {
                    let done = sqlx::query(sql::CLEAR_GROCERIES)
                        .bind(user.0)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected())
                }
            }
        };
    };
}
pub(super) use impl_store;
