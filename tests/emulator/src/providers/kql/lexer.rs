//! Splits a query into tokens: names (operator names with a hyphen, such as `mv-expand`,
//! are one token), string literals (`'…'`, `"…"`, verbatim `@'…'`), numbers and symbols.

use super::QueryError;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    Identifier(String),
    String(String),
    Number(f64),
    Symbol(&'static str),
}

/// The hyphenated operator names KQL has; they are one token (the emulator implements
/// only `mv-expand`, and names the others when it refuses them).
const HYPHENATED: &[&str] = &[
    "mv-expand",
    "mv-apply",
    "project-away",
    "project-keep",
    "project-rename",
    "project-reorder",
    "make-series",
    "top-nested",
    "top-hitters",
];

pub(super) fn parser_failure(message: impl Into<String>) -> QueryError {
    QueryError {
        code: "ParserFailure",
        message: message.into(),
    }
}

/// Splits `text` into tokens.
pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if c.is_whitespace() {
            index += 1;
            continue;
        }
        if c == '/' && chars.get(index + 1) == Some(&'/') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = index;
            while index < chars.len()
                && (chars[index].is_ascii_alphanumeric() || chars[index] == '_')
            {
                index += 1;
            }
            let mut word: String = chars[start..index].iter().collect();
            if chars.get(index) == Some(&'-') {
                let rest_end = (index + 1..chars.len())
                    .find(|&position| {
                        !(chars[position].is_ascii_alphanumeric() || chars[position] == '_')
                    })
                    .unwrap_or(chars.len());
                let joined: String = chars[start..rest_end].iter().collect();
                if HYPHENATED
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(&joined))
                {
                    word = joined;
                    index = rest_end;
                }
            }
            tokens.push(Token::Identifier(word));
            continue;
        }
        if c.is_ascii_digit() {
            let start = index;
            while index < chars.len() && (chars[index].is_ascii_digit() || chars[index] == '.') {
                index += 1;
            }
            let literal: String = chars[start..index].iter().collect();
            let number = literal
                .parse()
                .map_err(|_| parser_failure(format!("'{literal}' is not a number")))?;
            tokens.push(Token::Number(number));
            continue;
        }
        let verbatim = c == '@' && matches!(chars.get(index + 1), Some('\'' | '"'));
        if c == '\'' || c == '"' || verbatim {
            if verbatim {
                index += 1;
            }
            let quote = chars[index];
            index += 1;
            let mut value = String::new();
            loop {
                match chars.get(index) {
                    None => return Err(parser_failure("a string literal is not terminated")),
                    Some(&ch) if ch == quote => {
                        index += 1;
                        break;
                    }
                    Some('\\') if !verbatim => {
                        let escaped = chars
                            .get(index + 1)
                            .ok_or_else(|| parser_failure("a string literal is not terminated"))?;
                        value.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => *other,
                        });
                        index += 2;
                    }
                    Some(&ch) => {
                        value.push(ch);
                        index += 1;
                    }
                }
            }
            tokens.push(Token::String(value));
            continue;
        }
        let two: String = chars[index..chars.len().min(index + 2)].iter().collect();
        let symbol = match two.as_str() {
            "==" => Some("=="),
            "=~" => Some("=~"),
            "!=" => Some("!="),
            "!~" => Some("!~"),
            "<=" => Some("<="),
            ">=" => Some(">="),
            "<>" => Some("<>"),
            _ => None,
        };
        if let Some(symbol) = symbol {
            tokens.push(Token::Symbol(symbol));
            index += 2;
            continue;
        }
        let symbol = match c {
            '|' => "|",
            ',' => ",",
            '(' => "(",
            ')' => ")",
            '.' => ".",
            '[' => "[",
            ']' => "]",
            '=' => "=",
            '~' => "~",
            '!' => "!",
            '-' => "-",
            '<' => "<",
            '>' => ">",
            '$' => "$",
            '+' => "+",
            '*' => "*",
            '/' => "/",
            '%' => "%",
            ';' => ";",
            other => {
                return Err(parser_failure(format!("unexpected character '{other}'")));
            }
        };
        tokens.push(Token::Symbol(symbol));
        index += 1;
    }
    Ok(tokens)
}

/// How a token reads in an error message.
pub(super) fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end of the query".to_owned(),
        Some(Token::Identifier(name)) => format!("'{name}'"),
        Some(Token::String(text)) => format!("the string '{text}'"),
        Some(Token::Number(number)) => format!("the number {number}"),
        Some(Token::Symbol(symbol)) => format!("'{symbol}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyphenated_operators_are_one_token_and_nothing_else_is() {
        let tokens = tokenize("T | mv-expand nic = a-b // a comment\n| where x");
        let Ok(tokens) = tokens else {
            panic!("{tokens:?}");
        };
        assert_eq!(tokens[2], Token::Identifier("mv-expand".to_owned()));
        assert_eq!(tokens[5], Token::Identifier("a".to_owned()));
        assert_eq!(tokens[6], Token::Symbol("-"));
        assert_eq!(tokens[8], Token::Symbol("|"));
    }

    #[test]
    fn strings_numbers_and_symbols() {
        let tokens = tokenize(r#"x == 'it\'s' and y >= 2.5 or @'C:\dir' =~ "q""#);
        let Ok(tokens) = tokens else {
            panic!("{tokens:?}");
        };
        assert_eq!(tokens[2], Token::String("it's".to_owned()));
        assert_eq!(tokens[5], Token::Symbol(">="));
        assert_eq!(tokens[6], Token::Number(2.5));
        assert_eq!(tokens[8], Token::String("C:\\dir".to_owned()));
        assert!(tokenize("'open").is_err());
        assert!(tokenize("a # b").is_err());
    }
}
