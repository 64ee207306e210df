//! Xero's `where` filter language, as far as list endpoints need it:
//! `Name=="ABC"`, `Status!="DRAFT"`, `Contact.ContactID==Guid("...")`, `Total>=100`,
//! `Name.Contains("x")`, `Name.StartsWith("x")`, `Name.EndsWith("x")`, `Name.ToLower()=="x"`,
//! `Date>=DateTime(2024,01,31)`, joined with `AND`/`OR` (`&&`/`||`), `!`/`NOT`, and parentheses.
//! Fields are matched case-insensitively against the resource as the API renders it; text compares
//! case-insensitively, as Xero's database collation does.

use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Dot,
}

fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '.' if !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                out.push(Tok::Dot);
                i += 1
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string in where".into()),
                        Some('\\') if chars.get(i + 1).is_some() => {
                            s.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            '=' | '!' | '<' | '>' | '&' | '|' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = match two.as_str() {
                    "==" => "==",
                    "!=" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    "&&" => "AND",
                    "||" => "OR",
                    _ => match c {
                        '<' => "<",
                        '>' => ">",
                        '!' => "NOT",
                        '=' => "==",
                        _ => return Err(format!("unexpected '{c}' in where")),
                    },
                };
                i += if matches!(op, "<" | ">" | "NOT") || (op == "==" && two != "==") {
                    1
                } else {
                    2
                };
                out.push(Tok::Op(op));
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.to_ascii_uppercase().as_str() {
                    "AND" => out.push(Tok::Op("AND")),
                    "OR" => out.push(Tok::Op("OR")),
                    "NOT" => out.push(Tok::Op("NOT")),
                    _ => out.push(Tok::Ident(word)),
                }
            }
            other => return Err(format!("unexpected '{other}' in where")),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Text(String),
    Number(Decimal),
    Bool(bool),
    Null,
    /// Milliseconds since the epoch.
    Date(i64),
}

#[derive(Debug, Clone)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// Text compares case-insensitively, so `.ToLower()` and `.ToUpper()` change nothing.
    Compare {
        path: Vec<String>,
        op: &'static str,
        value: Lit,
    },
    Method {
        path: Vec<String>,
        method: String,
        arg: String,
    },
    /// A bare boolean field: `IsSupplier`.
    Truthy(Vec<String>),
}

/// A parsed `where`, ready to test resources against.
#[derive(Debug, Clone)]
pub struct Filter(Expr);

impl FromStr for Filter {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let tokens = lex(text)?;
        let mut p = Parser { tokens, pos: 0 };
        let expr = p.or()?;
        if p.pos != p.tokens.len() {
            return Err(format!("unexpected {:?} in where", p.tokens[p.pos]));
        }
        Ok(Filter(expr))
    }
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, tok: Tok) -> Result<(), String> {
        match self.next() {
            Some(t) if t == tok => Ok(()),
            other => Err(format!("expected {tok:?} in where, found {other:?}")),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Op("OR")) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::Op("AND")) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Tok::Op("NOT")) => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.or()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            _ => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let mut path = Vec::new();
        match self.next() {
            Some(Tok::Ident(name)) => path.push(name),
            other => return Err(format!("expected a field name in where, found {other:?}")),
        }
        while self.peek() == Some(&Tok::Dot) {
            self.pos += 1;
            let Some(Tok::Ident(name)) = self.next() else {
                return Err("expected a name after '.' in where".into());
            };
            if self.peek() == Some(&Tok::LParen) {
                self.pos += 1;
                let method = name.to_ascii_lowercase();
                match method.as_str() {
                    "tolower" | "toupper" => {
                        self.expect(Tok::RParen)?;
                    }
                    "contains" | "startswith" | "endswith" => {
                        let Some(Tok::Str(arg)) = self.next() else {
                            return Err(format!("{name}() takes a quoted string"));
                        };
                        self.expect(Tok::RParen)?;
                        return Ok(Expr::Method { path, method, arg });
                    }
                    _ => return Err(format!("unknown method {name}() in where")),
                }
            } else {
                path.push(name);
            }
        }
        let op = match self.peek() {
            Some(Tok::Op(op)) if matches!(*op, "==" | "!=" | "<" | ">" | "<=" | ">=") => *op,
            _ => return Ok(Expr::Truthy(path)),
        };
        self.pos += 1;
        let value = self.literal()?;
        Ok(Expr::Compare { path, op, value })
    }

    fn literal(&mut self) -> Result<Lit, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Text(s)),
            Some(Tok::Num(n)) => Decimal::from_str(&n)
                .map(Lit::Number)
                .map_err(|_| format!("'{n}' is not a number")),
            Some(Tok::Ident(word)) => match word.to_ascii_lowercase().as_str() {
                "true" => Ok(Lit::Bool(true)),
                "false" => Ok(Lit::Bool(false)),
                "null" => Ok(Lit::Null),
                "guid" => {
                    self.expect(Tok::LParen)?;
                    let Some(Tok::Str(s)) = self.next() else {
                        return Err("Guid() takes a quoted GUID".into());
                    };
                    self.expect(Tok::RParen)?;
                    Ok(Lit::Text(s))
                }
                "datetime" => {
                    self.expect(Tok::LParen)?;
                    let mut parts = Vec::new();
                    loop {
                        match self.next() {
                            Some(Tok::Num(n)) => {
                                parts.push(n.parse::<u32>().map_err(|_| "bad DateTime()")?)
                            }
                            other => {
                                return Err(format!("DateTime() takes numbers, found {other:?}"))
                            }
                        }
                        match self.next() {
                            Some(Tok::Comma) => continue,
                            Some(Tok::RParen) => break,
                            other => {
                                return Err(format!(
                                    "expected ',' or ')' in DateTime(), found {other:?}"
                                ))
                            }
                        }
                    }
                    let get = |i: usize| parts.get(i).copied().unwrap_or(0);
                    let date = NaiveDate::from_ymd_opt(get(0) as i32, get(1), get(2))
                        .and_then(|d| d.and_hms_opt(get(3), get(4), get(5)))
                        .ok_or("DateTime() is not a valid date")?;
                    Ok(Lit::Date(Utc.from_utc_datetime(&date).timestamp_millis()))
                }
                _ => Err(format!("unexpected '{word}' in where: quote text values")),
            },
            other => Err(format!("expected a value in where, found {other:?}")),
        }
    }
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v, |cur, name| crate::xero::xjson::field(cur, name))
}

fn value_as_lit(v: &Value) -> Lit {
    match v {
        Value::String(s) => {
            match crate::xero::xjson::parse_datetime(s).filter(|_| s.starts_with("/Date(")) {
                Some(t) => Lit::Date(t.timestamp_millis()),
                None => Lit::Text(s.clone()),
            }
        }
        Value::Number(n) => Decimal::from_str(&n.to_string()).map_or(Lit::Null, Lit::Number),
        Value::Bool(b) => Lit::Bool(*b),
        _ => Lit::Null,
    }
}

fn compare(left: &Lit, op: &str, right: &Lit) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (left, right) {
        (Lit::Text(a), Lit::Text(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Lit::Number(a), Lit::Number(b)) => Some(a.cmp(b)),
        (Lit::Date(a), Lit::Date(b)) => Some(a.cmp(b)),
        (Lit::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (Lit::Null, Lit::Null) => Some(Ordering::Equal),
        _ => None,
    };
    match (op, ord) {
        ("==", Some(o)) => o == Ordering::Equal,
        ("!=", Some(o)) => o != Ordering::Equal,
        ("!=", None) => true,
        ("<", Some(o)) => o == Ordering::Less,
        (">", Some(o)) => o == Ordering::Greater,
        ("<=", Some(o)) => o != Ordering::Greater,
        (">=", Some(o)) => o != Ordering::Less,
        _ => false,
    }
}

impl Filter {
    pub fn matches(&self, resource: &Value) -> bool {
        eval(&self.0, resource)
    }
}

fn eval(e: &Expr, v: &Value) -> bool {
    match e {
        Expr::And(a, b) => eval(a, v) && eval(b, v),
        Expr::Or(a, b) => eval(a, v) || eval(b, v),
        Expr::Not(a) => !eval(a, v),
        Expr::Truthy(path) => lookup(v, path).and_then(Value::as_bool).unwrap_or(false),
        Expr::Compare {
            path, op, value, ..
        } => {
            let left = lookup(v, path).map_or(Lit::Null, value_as_lit);
            compare(&left, op, value)
        }
        Expr::Method { path, method, arg } => {
            let Some(text) = lookup(v, path).and_then(Value::as_str) else {
                return false;
            };
            let (text, arg) = (text.to_lowercase(), arg.to_lowercase());
            match method.as_str() {
                "contains" => text.contains(&arg),
                "startswith" => text.starts_with(&arg),
                _ => text.ends_with(&arg),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(s: &str) -> Filter {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn equality_methods_and_logic() {
        let inv = json!({"Type": "ACCREC", "Status": "AUTHORISED", "Total": 115.00,
            "Contact": {"ContactID": "abc", "Name": "Ridgeway University"},
            "Date": "/Date(1552262400000+0000)/", "IsDiscounted": false});
        assert!(f(r#"Type=="ACCREC""#).matches(&inv));
        assert!(f(r#"type == "accrec" AND Status != "DRAFT""#).matches(&inv));
        assert!(f(r#"Contact.Name.Contains("ridge")"#).matches(&inv));
        assert!(f(r#"Contact.Name.StartsWith("Ridge") && Total>=100"#).matches(&inv));
        assert!(!f(r#"Total > 115"#).matches(&inv));
        assert!(f(r#"Contact.ContactID==Guid("abc")"#).matches(&inv));
        assert!(f(r#"Date >= DateTime(2019,03,11) AND Date < DateTime(2019,03,12)"#).matches(&inv));
        assert!(
            f(r#"(Status=="DRAFT" OR Status=="AUTHORISED") AND NOT IsDiscounted"#).matches(&inv)
        );
        assert!(f(r#"Contact.Name.ToLower()=="ridgeway university""#).matches(&inv));
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        assert!("Name==".parse::<Filter>().is_err());
        assert!("Name==unquoted"
            .parse::<Filter>()
            .unwrap_err()
            .contains("quote"));
        assert!(r#"Name.Frobnicate("x")"#.parse::<Filter>().is_err());
    }
}
