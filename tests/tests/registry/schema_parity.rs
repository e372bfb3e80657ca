//! The SQLite and PostgreSQL migrations are written twice, once per dialect. This applies
//! both sets and compares what they built (tables, columns, types, nullability, defaults,
//! primary keys, indexes, foreign keys, checks), so the two cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};

use hyyve_database::Database;
use sqlx::{AnyPool, Row};

use super::Db;

/// A table as both backends can describe it, in dialect-neutral terms.
#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    /// name → (type class, NOT NULL, default).
    columns: BTreeMap<String, (String, bool, Option<String>)>,
    primary_key: Vec<String>,
    /// (unique, columns, tokens of the partial-index predicate).
    indexes: BTreeSet<(bool, Vec<String>, Vec<String>)>,
    /// (columns, referenced table, referenced columns).
    foreign_keys: BTreeSet<(Vec<String>, String, Vec<String>)>,
    /// The identifiers and literals of each CHECK, sorted.
    checks: BTreeSet<Vec<String>>,
}

type Schema = BTreeMap<String, Table>;

#[tokio::test]
async fn sqlite_and_postgres_migrations_build_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Database::open(&Db::Sqlite.fresh_url(dir.path()).await)
        .await
        .unwrap()
        .pool;
    let postgres = Database::open(&Db::Postgres.fresh_url(dir.path()).await)
        .await
        .unwrap()
        .pool;
    let lite = sqlite_schema(&sqlite).await;
    let pg = postgres_schema(&postgres).await;
    assert!(
        lite.len() >= 10,
        "introspection found the tables: {lite:#?}"
    );
    assert_eq!(
        lite.keys().collect::<Vec<_>>(),
        pg.keys().collect::<Vec<_>>(),
        "the same tables"
    );
    for (name, table) in &lite {
        assert_eq!(
            table, &pg[name],
            "table `{name}`: SQLite (left), PostgreSQL (right)"
        );
    }
}

#[test]
fn the_comparison_sees_what_dialects_write_differently() {
    // The normalizations that make the dialects comparable must not erase real changes.
    assert_eq!(type_class("BIGSERIAL"), type_class("integer"));
    assert_ne!(type_class("text"), type_class("bigint"));
    assert_eq!(
        tokens("CHECK ((plan = ANY (ARRAY['free'::text, 'pro'::text])))"),
        tokens("CHECK (plan IN ('free', 'pro'))")
    );
    assert_ne!(
        tokens("CHECK (plan IN ('free', 'pro'))"),
        tokens("CHECK (plan IN ('free', 'team'))")
    );
    assert_eq!(default_value("'x'::text"), default_value("'x'"));
    assert_ne!(default_value("0"), default_value("1"));
}

/// Tables the migrations made (not sqlx's bookkeeping, not SQLite's own).
fn ours(table: &str) -> bool {
    !table.starts_with("_sqlx") && !table.starts_with("sqlite_")
}

fn type_class(declared: &str) -> &'static str {
    match declared.to_ascii_lowercase().as_str() {
        "text" => "text",
        "bigint" | "integer" | "int" | "int8" | "int4" | "bigserial" => "integer",
        "blob" | "bytea" => "bytes",
        "real" | "double precision" | "float8" => "float",
        "boolean" | "bool" => "boolean",
        other => panic!("column type `{other}` has no class here: add it"),
    }
}

/// A default as a value: PostgreSQL writes casts (`'x'::text`) that SQLite does not.
fn default_value(sql: &str) -> String {
    match sql.split_once("::") {
        Some((value, _)) => value.trim().to_owned(),
        None => sql.trim().to_owned(),
    }
}

/// The identifiers and quoted literals of an SQL expression, sorted, without the words
/// and casts each dialect spells its own way (`IN (…)` against `= ANY (ARRAY[…])`).
fn tokens(sql: &str) -> Vec<String> {
    const NOISE: &[&str] = &[
        "check", "in", "any", "array", "and", "or", "not", "is", "null", "text", "bigint",
    ];
    let mut found = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            let literal: String = chars.by_ref().take_while(|&c| c != '\'').collect();
            found.push(format!("'{literal}'"));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut word = c.to_string();
            while let Some(&next) = chars
                .peek()
                .filter(|c| c.is_ascii_alphanumeric() || **c == '_')
            {
                word.push(next);
                chars.next();
            }
            let word = word.to_ascii_lowercase();
            if !NOISE.contains(&word.as_str()) {
                found.push(word);
            }
        }
    }
    found.sort();
    found
}

/// The `CHECK (…)` expressions of a `CREATE TABLE` statement, parentheses balanced.
fn checks_of(create: &str) -> Vec<String> {
    let upper = create.to_ascii_uppercase();
    let mut checks = Vec::new();
    let mut from = 0;
    while let Some(at) = upper[from..].find("CHECK").map(|i| i + from) {
        let word = |i: usize| {
            upper
                .as_bytes()
                .get(i)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        };
        if word(at + 5) || (at > 0 && word(at - 1)) {
            from = at + 5;
            continue;
        }
        let open = at + upper[at..].find('(').expect("CHECK has a parenthesis");
        let mut depth = 0;
        let mut end = open;
        for (i, c) in create[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = open + i;
                break;
            }
        }
        checks.push(create[at..=end].to_owned());
        from = end;
    }
    checks
}

fn split_columns(list: &str) -> Vec<String> {
    list.split(',').map(|c| c.trim().to_owned()).collect()
}

async fn sqlite_schema(pool: &AnyPool) -> Schema {
    let mut schema = Schema::new();
    let tables = sqlx::query("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        .fetch_all(pool)
        .await
        .unwrap();
    for row in tables {
        let name: String = row.get("name");
        if !ours(&name) {
            continue;
        }
        let create: String = row.get("sql");
        let mut table = Table::default();
        let columns = sqlx::query(
            "SELECT name, type, \"notnull\" AS not_null, dflt_value, pk \
             FROM pragma_table_info($1) ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut key = Vec::new();
        for column in columns {
            let column_name: String = column.get("name");
            let declared: String = column.get("type");
            let pk: i64 = column.get("pk");
            let not_null: i64 = column.get("not_null");
            let default: Option<String> = column.get("dflt_value");
            let autoincrement = pk > 0 && create.to_ascii_uppercase().contains("AUTOINCREMENT");
            let default = match autoincrement {
                true => Some("autoincrement".to_owned()),
                false => default.as_deref().map(default_value),
            };
            if pk > 0 {
                key.push((pk, column_name.clone()));
            }
            // A primary key is never NULL; SQLite only says so for INTEGER keys.
            table.columns.insert(
                column_name,
                (
                    type_class(&declared).into(),
                    not_null == 1 || pk > 0,
                    default,
                ),
            );
        }
        key.sort();
        table.primary_key = key.into_iter().map(|(_, c)| c).collect();
        let indexes = sqlx::query(
            "SELECT l.name, l.\"unique\" AS is_unique, l.origin, m.sql \
             FROM pragma_index_list($1) l LEFT JOIN sqlite_master m ON m.name = l.name",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .unwrap();
        for index in indexes {
            let origin: String = index.get("origin");
            if origin == "pk" {
                continue;
            }
            let index_name: String = index.get("name");
            let unique: i64 = index.get("is_unique");
            let sql: Option<String> = index.get("sql");
            let predicate = sql
                .as_deref()
                .and_then(|s| {
                    s.to_ascii_uppercase()
                        .find(" WHERE ")
                        .map(|at| tokens(&s[at + 7..]))
                })
                .unwrap_or_default();
            let columns: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                    .bind(&index_name)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            table.indexes.insert((unique == 1, columns, predicate));
        }
        let references = sqlx::query(
            "SELECT id, \"table\" AS target, \"from\" AS source, \"to\" AS referenced \
             FROM pragma_foreign_key_list($1) ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut keys: BTreeMap<i64, (Vec<String>, String, Vec<String>)> = BTreeMap::new();
        for reference in references {
            let entry = keys.entry(reference.get("id")).or_default();
            entry.0.push(reference.get("source"));
            entry.1 = reference.get("target");
            entry.2.push(reference.get("referenced"));
        }
        table.foreign_keys = keys.into_values().collect();
        table.checks = checks_of(&create).iter().map(|c| tokens(c)).collect();
        schema.insert(name, table);
    }
    schema
}

async fn postgres_schema(pool: &AnyPool) -> Schema {
    let mut schema = Schema::new();
    let columns = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS ty, \
         is_nullable::text AS nullable, column_default::text AS dflt \
         FROM information_schema.columns WHERE table_schema = current_schema() \
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for column in columns {
        let table: String = column.get("t");
        if !ours(&table) {
            continue;
        }
        let default: Option<String> = column.get("dflt");
        let default = default.map(|d| match d.starts_with("nextval(") {
            true => "autoincrement".to_owned(),
            false => default_value(&d),
        });
        let nullable: String = column.get("nullable");
        let ty: String = column.get("ty");
        schema.entry(table).or_default().columns.insert(
            column.get("c"),
            (type_class(&ty).into(), nullable == "NO", default),
        );
    }
    let indexes = sqlx::query(
        "SELECT t.relname::text AS t, ix.indisunique AS is_unique, ix.indisprimary AS is_primary, \
         pg_get_expr(ix.indpred, ix.indrelid)::text AS predicate, \
         array_to_string(ARRAY(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY \
           AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
           ORDER BY k.ord), ',') AS columns \
         FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for index in indexes {
        let name: String = index.get("t");
        if !ours(&name) {
            continue;
        }
        let table = schema.entry(name).or_default();
        let columns = split_columns(&index.get::<String, _>("columns"));
        if index.get::<bool, _>("is_primary") {
            table.primary_key = columns;
            continue;
        }
        let predicate: Option<String> = index.get("predicate");
        table.indexes.insert((
            index.get("is_unique"),
            columns,
            predicate.as_deref().map(tokens).unwrap_or_default(),
        ));
    }
    let constraints = sqlx::query(
        "SELECT c.conrelid::regclass::text AS t, c.contype::text AS kind, \
         pg_get_constraintdef(c.oid)::text AS def \
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
         WHERE n.nspname = current_schema() AND c.contype IN ('c', 'f')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for constraint in constraints {
        let name: String = constraint.get("t");
        let def: String = constraint.get("def");
        let table = schema.entry(name).or_default();
        match constraint.get::<String, _>("kind").as_str() {
            "c" => {
                table.checks.insert(tokens(&def));
            }
            _ => {
                // FOREIGN KEY (a, b) REFERENCES target(c, d)
                let (source, rest) = def
                    .strip_prefix("FOREIGN KEY (")
                    .and_then(|d| d.split_once(") REFERENCES "))
                    .unwrap_or_else(|| panic!("foreign key `{def}`"));
                let (target, referenced) = rest
                    .trim_end_matches(')')
                    .split_once('(')
                    .unwrap_or_else(|| panic!("foreign key `{def}`"));
                table.foreign_keys.insert((
                    split_columns(source),
                    target.to_owned(),
                    split_columns(referenced),
                ));
            }
        }
    }
    schema
}
