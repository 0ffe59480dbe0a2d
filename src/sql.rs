//! SQL text, as far as spans need it: a tokenizer that knows quoting
//! (strings, quoted identifiers, dollar quotes, comments), the operation and
//! the first collection a statement names (for span names and
//! `db.operation.name` / `db.collection.name`), and sanitizing (string and
//! number literals become `?`) for `db.query.text`.
//!
//! Naming follows the OpenTelemetry database conventions: the operation is
//! the statement's leading keyword (with the object type for DDL:
//! `CREATE TABLE`, `DROP INDEX`), never invented from a statement without
//! one; the collection is the first table the statement names, written as
//! in the query, schema included (`public.users`), quotes removed.

/// One token of SQL text, with where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A keyword or unquoted identifier.
    Word,
    /// `"x"`, `` `x` `` or `[x]`: an identifier (or, in MySQL, `"x"` a string).
    Quoted,
    /// `'x'`, `E'x'`, `$$x$$`, `$tag$x$tag$`.
    Str,
    Num,
    /// `$1`, `?`, `:name`, `@p1`.
    Param,
    Punct(u8),
    Comment,
}

fn tokens(q: &str) -> Vec<Tok> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            Kind::Comment
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            // PostgreSQL nests block comments.
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            Kind::Comment
        } else if c == b'\'' {
            i = quoted_end(b, i, b'\'');
            Kind::Str
        } else if matches!(
            c,
            b'E' | b'e' | b'B' | b'b' | b'X' | b'x' | b'N' | b'n' | b'U' | b'u'
        ) && b.get(i + 1) == Some(&b'\'')
        {
            i = quoted_end(b, i + 1, b'\'');
            Kind::Str
        } else if c == b'"' || c == b'`' {
            i = quoted_end(b, i, c);
            Kind::Quoted
        } else if c == b'[' {
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
            i = (i + 1).min(b.len());
            Kind::Quoted
        } else if c == b'$' {
            // $1 (a parameter), or $tag$...$tag$ / $$...$$ (a string).
            let mut j = i + 1;
            if b.get(j).is_some_and(u8::is_ascii_digit) {
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
                Kind::Param
            } else {
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if b.get(j) == Some(&b'$') {
                    let tag = &b[i..=j];
                    let body = j + 1;
                    let close = b[body..]
                        .windows(tag.len())
                        .position(|w| w == tag)
                        .map_or(b.len(), |p| body + p + tag.len());
                    i = close;
                    Kind::Str
                } else {
                    i = j.max(i + 1);
                    Kind::Word
                }
            }
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            if c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
                i += 2;
                while i < b.len() && b[i].is_ascii_hexdigit() {
                    i += 1;
                }
            } else {
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                if matches!(b.get(i), Some(b'e' | b'E'))
                    && (b.get(i + 1).is_some_and(u8::is_ascii_digit)
                        || (matches!(b.get(i + 1), Some(b'+' | b'-'))
                            && b.get(i + 2).is_some_and(u8::is_ascii_digit)))
                {
                    i += 2;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            Kind::Num
        } else if (c == b'?')
            || ((c == b':' || c == b'@')
                && b.get(i + 1)
                    .is_some_and(|n| n.is_ascii_alphanumeric() || *n == b'_')
                && !(c == b':' && i > 0 && b[i - 1] == b':'))
        {
            i += 1;
            while c != b'?' && i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            Kind::Param
        } else if ident(c) {
            while i < b.len() && ident(b[i]) {
                i += 1;
            }
            Kind::Word
        } else {
            i += 1;
            Kind::Punct(c)
        };
        out.push(Tok {
            kind,
            start,
            end: i.min(b.len()),
        });
    }
    out
}

/// Index just past a quoted run starting at `open` (a doubled quote is an
/// escaped one; a backslash escapes in MySQL and E'' strings).
fn quoted_end(b: &[u8], open: usize, q: u8) -> usize {
    let mut i = open + 1;
    while i < b.len() {
        if b[i] == b'\\' && q == b'\'' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// `db.query.text` without its literals: every string and number literal
/// becomes `?`; identifiers, placeholders, comments and layout stay.
/// `double_quoted_strings`: `"x"` is a string (MySQL), not an identifier.
pub fn sanitize(q: &str, double_quoted_strings: bool) -> String {
    let mut out = String::with_capacity(q.len());
    let mut at = 0;
    for t in tokens(q) {
        let literal = match t.kind {
            Kind::Str | Kind::Num => true,
            Kind::Quoted => double_quoted_strings && q.as_bytes()[t.start] == b'"',
            _ => false,
        };
        if literal {
            out.push_str(&q[at..t.start]);
            out.push('?');
            at = t.end;
        }
    }
    out.push_str(&q[at..]);
    out
}

/// The operation and the collection a statement names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryShape {
    /// `SELECT`, `INSERT`, `CREATE TABLE`, … (upper case); `None` when the
    /// statement does not start with a known keyword.
    pub operation: Option<String>,
    /// The first table the statement names (`db.collection.name`).
    pub collection: Option<String>,
}

/// Leading keywords that are operations. Anything else (a typo, a syntax
/// error) names no operation.
const OPERATIONS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "UPSERT",
    "REPLACE",
    "VALUES",
    "TABLE",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "COMMENT",
    "GRANT",
    "REVOKE",
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "PREPARE",
    "EXECUTE",
    "EXEC",
    "DEALLOCATE",
    "CALL",
    "DO",
    "SET",
    "RESET",
    "SHOW",
    "USE",
    "DESCRIBE",
    "DESC",
    "EXPLAIN",
    "ANALYZE",
    "VACUUM",
    "REINDEX",
    "CLUSTER",
    "REFRESH",
    "COPY",
    "LOCK",
    "UNLOCK",
    "LISTEN",
    "UNLISTEN",
    "NOTIFY",
    "DECLARE",
    "FETCH",
    "MOVE",
    "CLOSE",
    "DISCARD",
    "CHECKPOINT",
    "PRAGMA",
    "ATTACH",
    "DETACH",
    "OPTIMIZE",
    "LOAD",
    "IMPORT",
    "EXPORT",
];

/// Object types of CREATE/DROP/ALTER that become part of the operation.
const OBJECTS: &[&str] = &[
    "TABLE",
    "INDEX",
    "VIEW",
    "SEQUENCE",
    "SCHEMA",
    "DATABASE",
    "FUNCTION",
    "PROCEDURE",
    "TRIGGER",
    "TYPE",
    "EXTENSION",
    "ROLE",
    "USER",
    "DOMAIN",
    "POLICY",
    "RULE",
    "EVENT",
    "PUBLICATION",
    "SUBSCRIPTION",
    "TABLESPACE",
    "SERVER",
    "COLLATION",
    "AGGREGATE",
];

/// Words between CREATE and the object type.
const CREATE_MODIFIERS: &[&str] = &[
    "OR",
    "REPLACE",
    "TEMP",
    "TEMPORARY",
    "UNLOGGED",
    "GLOBAL",
    "LOCAL",
    "UNIQUE",
    "MATERIALIZED",
    "RECURSIVE",
    "FOREIGN",
    "CONSTRAINT",
    "DEFINER",
    "ALGORITHM",
    "SQL",
    "SECURITY",
    "VIRTUAL",
    "FULLTEXT",
    "SPATIAL",
    "CLUSTERED",
    "NONCLUSTERED",
];

/// Words that may stand between a table keyword and the table.
const TABLE_NOISE: &[&str] = &[
    "ONLY",
    "IF",
    "NOT",
    "EXISTS",
    "CONCURRENTLY",
    "LATERAL",
    "TABLE",
    "IGNORE",
    "LOW_PRIORITY",
    "DELAYED",
    "HIGH_PRIORITY",
    "QUICK",
];

/// A statement's shape over its tokens, comments left out.
struct Shape<'q> {
    q: &'q str,
    t: Vec<Tok>,
}

impl<'q> Shape<'q> {
    fn text(&self, i: usize) -> &'q str {
        self.t.get(i).map_or("", |t| &self.q[t.start..t.end])
    }

    fn is_word(&self, i: usize, w: &str) -> bool {
        self.t.get(i).is_some_and(|t| t.kind == Kind::Word) && self.text(i).eq_ignore_ascii_case(w)
    }

    fn upper(&self, i: usize) -> Option<String> {
        let t = self.t.get(i)?;
        (t.kind == Kind::Word).then(|| self.text(i).to_ascii_uppercase())
    }

    fn punct(&self, i: usize, c: u8) -> bool {
        self.t.get(i).is_some_and(|t| t.kind == Kind::Punct(c))
    }

    /// One part of a name: a word, a quoted identifier (quotes removed), or
    /// a single-quoted string where SQLite and MySQL accept one as a name.
    fn part(&self, i: usize) -> Option<String> {
        let t = self.t.get(i)?;
        let s = self.text(i);
        match t.kind {
            Kind::Word => Some(s.to_owned()),
            Kind::Quoted | Kind::Str if s.len() >= 2 => {
                let inner = &s[1..s.len() - 1];
                let q = &s[..1];
                Some(inner.replace(&format!("{q}{q}"), q))
            }
            _ => None,
        }
    }

    /// The table name at `i` (`a`, `s.a`, `"s"."a"`), unless it is a
    /// keyword or, after FROM or JOIN (`from`), a function call
    /// (`generate_series(1, 3)`); skips the noise words before it.
    fn table_at(&self, mut i: usize, from: bool) -> Option<String> {
        while self
            .upper(i)
            .is_some_and(|w| TABLE_NOISE.contains(&w.as_str()))
        {
            i += 1;
        }
        let mut name = self.part(i)?;
        if self.t[i].kind == Kind::Word
            && matches!(
                self.upper(i).as_deref(),
                Some("SELECT" | "WITH" | "VALUES" | "SET" | "WHERE" | "DEFAULT")
            )
        {
            return None;
        }
        let mut j = i + 1;
        while self.punct(j, b'.') {
            name.push('.');
            name.push_str(&self.part(j + 1)?);
            j += 2;
        }
        if from && self.punct(j, b'(') && self.t[i].kind == Kind::Word {
            return None;
        }
        Some(name)
    }

    /// The first table the statement names in a table position, from token
    /// `from` on: after FROM or JOIN of the query (not of a function's
    /// arguments: `extract(epoch FROM t)`), or INTO.
    fn first_table(&self, from: usize) -> Option<String> {
        // One entry per open parenthesis: true for a subquery.
        let mut parens: Vec<bool> = Vec::new();
        for i in from..self.t.len() {
            if self.punct(i, b'(') {
                let sub = matches!(
                    self.upper(i + 1).as_deref(),
                    Some("SELECT" | "WITH" | "VALUES")
                );
                parens.push(sub);
                continue;
            }
            if self.punct(i, b')') {
                parens.pop();
                continue;
            }
            if !parens.iter().all(|sub| *sub) {
                continue;
            }
            let Some(w) = self.upper(i) else { continue };
            if matches!(w.as_str(), "FROM" | "JOIN" | "INTO")
                && let Some(t) = self.table_at(i + 1, w != "INTO")
            {
                return Some(t);
            }
        }
        None
    }
}

/// A database span's name by the OpenTelemetry rules: `{operation}
/// {collection}`, else the operation, else the database system.
pub fn span_name(shape: &QueryShape, system: &str) -> String {
    match (&shape.operation, &shape.collection) {
        (Some(op), Some(c)) => format!("{op} {c}"),
        (Some(op), None) => op.clone(),
        _ => system.to_owned(),
    }
}

/// The operation and the first collection of statement `q`.
pub fn shape(q: &str) -> QueryShape {
    let t: Vec<Tok> = tokens(q)
        .into_iter()
        .filter(|t| t.kind != Kind::Comment)
        .collect();
    let s = Shape { q, t };
    // `(SELECT ...) UNION (SELECT ...)`
    let mut i = 0;
    while s.punct(i, b'(') {
        i += 1;
    }
    let none = QueryShape {
        operation: None,
        collection: None,
    };
    let Some(first) = s.upper(i) else { return none };
    if first == "WITH" {
        // The statement after the common table expressions, at depth 0.
        let mut depth = 0i32;
        let mut j = i + 1;
        while j < s.t.len() {
            if s.punct(j, b'(') {
                depth += 1;
            } else if s.punct(j, b')') {
                depth -= 1;
            } else if depth == 0
                && matches!(
                    s.upper(j).as_deref(),
                    Some("SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE")
                )
            {
                return QueryShape {
                    operation: s.upper(j),
                    collection: s.first_table(i + 1),
                };
            }
            j += 1;
        }
        return none;
    }
    if !OPERATIONS.contains(&first.as_str()) {
        return none;
    }
    let op = |o: String, c: Option<String>| QueryShape {
        operation: Some(o),
        collection: c,
    };
    match first.as_str() {
        "CREATE" | "DROP" | "ALTER" => {
            let mut j = i + 1;
            while s
                .upper(j)
                .is_some_and(|w| CREATE_MODIFIERS.contains(&w.as_str()))
            {
                j += 1;
            }
            let Some(object) = s.upper(j).filter(|w| OBJECTS.contains(&w.as_str())) else {
                return op(first, None);
            };
            let operation = format!("{first} {object}");
            let collection = match (first.as_str(), object.as_str()) {
                (_, "TABLE" | "VIEW") => s.table_at(j + 1, false),
                ("CREATE", "INDEX") => {
                    // CREATE INDEX [CONCURRENTLY] [IF NOT EXISTS] [name] ON [ONLY] table
                    (j + 1..s.t.len())
                        .find(|k| s.is_word(*k, "ON"))
                        .and_then(|k| s.table_at(k + 1, false))
                }
                _ => None,
            };
            op(operation, collection)
        }
        "SELECT" | "EXPLAIN" | "VALUES" => {
            let c = s.first_table(i + 1);
            op(first, c)
        }
        "INSERT" | "REPLACE" | "UPSERT" | "MERGE" => {
            let c = (i + 1..s.t.len())
                .find(|k| s.is_word(*k, "INTO"))
                .and_then(|k| s.table_at(k + 1, false))
                .or_else(|| s.table_at(i + 1, false));
            op(first, c)
        }
        "UPDATE" | "TRUNCATE" | "LOCK" | "TABLE" | "COPY" => {
            let c = s.table_at(i + 1, false);
            op(first, c)
        }
        "DELETE" => {
            let c = (i + 1..s.t.len())
                .find(|k| s.is_word(*k, "FROM"))
                .and_then(|k| s.table_at(k + 1, false))
                .or_else(|| s.table_at(i + 1, false));
            op(first, c)
        }
        "VACUUM" | "ANALYZE" | "REINDEX" | "CLUSTER" => {
            // Options first: VACUUM (VERBOSE, ANALYZE) t, VACUUM FULL t.
            let mut j = i + 1;
            if s.punct(j, b'(') {
                while j < s.t.len() && !s.punct(j, b')') {
                    j += 1;
                }
                j += 1;
            }
            while matches!(
                s.upper(j).as_deref(),
                Some("FULL" | "FREEZE" | "VERBOSE" | "ANALYZE" | "TABLE" | "INDEX")
            ) {
                j += 1;
            }
            let c = s.table_at(j, false);
            op(first, c)
        }
        _ => op(first, None),
    }
}

#[cfg(test)]
mod tests;
