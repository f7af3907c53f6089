//! The few shell commands an emulated Linux VM runs, and its interactive shell.
//!
//! Clients of the emulator only need to see that a session on the VM really works: that
//! `hostname` names the right machine, `whoami` the admin user, that exit statuses and
//! standard error travel back, and that an interactive login gets a prompt. So this is a
//! tiny, honest subset of bash: words with quotes and `$VAR`/`$?` expansion, command lists
//! joined by `;`, `&&` and `||`, and a handful of commands. Anything else is reported as
//! bash would (`command not found`, exit 127) or, for syntax it does not model (pipes,
//! redirections, subshells), as an error that says so, never as a wrong answer.
//!
//! As with a real login shell, the prompt and echo appear only on a terminal (a pty was
//! requested); without one, input is read line by line and only command output comes back.

use super::SshService;

/// The kernel release `uname -r` reports: an Ubuntu kernel as Azure ships it.
const KERNEL_RELEASE: &str = "6.8.0-1021-azure";
/// What `uname -v` reports.
const KERNEL_VERSION: &str = "#25-Ubuntu SMP Wed Jan 15 20:45:09 UTC 2025";
/// The longest input line the interactive shell keeps; longer input is cut off, so a
/// client cannot make the emulator hold unbounded memory.
const MAX_LINE_LENGTH: usize = 64 * 1024;

/// What running a command line produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CommandOutput {
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
    /// Exit status of the last command run.
    pub(crate) status: u8,
    /// The line ran `exit`: the shell ends with `status`.
    pub(crate) exit_requested: bool,
}

/// Runs one command line, as `bash -c LINE` would on the VM. `last_status` is what `$?`
/// expands to.
pub(crate) fn run_command_line(machine: &SshService, line: &str, last_status: u8) -> CommandOutput {
    let mut output = CommandOutput {
        status: last_status,
        ..CommandOutput::default()
    };
    let commands = match tokenize(line).and_then(split_list) {
        Ok(commands) => commands,
        Err(error) => {
            output.stderr.push_str(&error.message());
            output.status = 2;
            return output;
        }
    };
    for (connector, words) in commands {
        let runs = match connector {
            Connector::First | Connector::Sequence => true,
            Connector::And => output.status == 0,
            Connector::Or => output.status != 0,
        };
        if !runs {
            continue;
        }
        // Expansion happens as each command runs, so `$?` sees the command before it.
        let words: Vec<String> = words
            .iter()
            .filter_map(|word| word.expand(machine, output.status))
            .collect();
        run_command(machine, &words, &mut output);
        if output.exit_requested {
            break;
        }
    }
    output
}

/// Runs one simple command (its words already expanded) and records its effect.
fn run_command(machine: &SshService, words: &[String], output: &mut CommandOutput) {
    let Some((name, arguments)) = words.split_first() else {
        return;
    };
    let user = machine.admin_user.as_str();
    output.status = match name.as_str() {
        "true" | ":" => 0,
        "false" => 1,
        "echo" => echo(arguments, output),
        "hostname" => {
            output.stdout.push_str(&machine.computer_name);
            output.stdout.push('\n');
            0
        }
        "whoami" => {
            output.stdout.push_str(user);
            output.stdout.push('\n');
            0
        }
        "pwd" => {
            output.stdout.push_str(&format!("/home/{user}\n"));
            0
        }
        "uname" => uname(machine, arguments, output),
        "exit" => exit(arguments, output),
        _ => {
            output
                .stderr
                .push_str(&format!("bash: {name}: command not found\n"));
            127
        }
    };
}

/// `echo [-n] WORDS…`
fn echo(arguments: &[String], output: &mut CommandOutput) -> u8 {
    let mut newline = true;
    let mut words = arguments;
    while let Some((first, rest)) = words.split_first() {
        if first != "-n" {
            break;
        }
        newline = false;
        words = rest;
    }
    output.stdout.push_str(&words.join(" "));
    if newline {
        output.stdout.push('\n');
    }
    0
}

/// `exit [N]`: N modulo 256, or the last status without N.
fn exit(arguments: &[String], output: &mut CommandOutput) -> u8 {
    match arguments {
        [] => {
            output.exit_requested = true;
            output.status
        }
        [status] => {
            output.exit_requested = true;
            match status.parse::<i64>() {
                // Exit statuses wrap modulo 256 (`exit -1` is 255), as in bash.
                Ok(number) => number.rem_euclid(256) as u8,
                Err(_) => {
                    output.stderr.push_str(&format!(
                        "bash: exit: {status}: numeric argument required\n"
                    ));
                    2
                }
            }
        }
        _ => {
            output.stderr.push_str("bash: exit: too many arguments\n");
            1
        }
    }
}

/// `uname [-asnrvmpio]`
fn uname(machine: &SshService, arguments: &[String], output: &mut CommandOutput) -> u8 {
    const FIELDS: &str = "snrvmpio";
    let mut wanted = String::new();
    for argument in arguments {
        let flags = match argument.as_str() {
            "--all" => "a",
            flag if flag.starts_with('-') && flag.len() > 1 => &flag[1..],
            operand => {
                output.stderr.push_str(&format!(
                    "uname: extra operand '{operand}'\nTry 'uname --help' for more information.\n"
                ));
                return 1;
            }
        };
        for flag in flags.chars() {
            if flag == 'a' {
                wanted.push_str(FIELDS);
            } else if FIELDS.contains(flag) {
                wanted.push(flag);
            } else {
                output.stderr.push_str(&format!(
                    "uname: invalid option -- '{flag}'\nTry 'uname --help' for more information.\n"
                ));
                return 1;
            }
        }
    }
    if wanted.is_empty() {
        wanted.push('s');
    }
    let fields: Vec<&str> = FIELDS
        .chars()
        .filter(|field| wanted.contains(*field))
        .map(|field| match field {
            's' => "Linux",
            'n' => machine.computer_name.as_str(),
            'r' => KERNEL_RELEASE,
            'v' => KERNEL_VERSION,
            'm' | 'p' | 'i' => "x86_64",
            _ => "GNU/Linux",
        })
        .collect();
    output.stdout.push_str(&fields.join(" "));
    output.stdout.push('\n');
    0
}

/// How a command joins the list before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connector {
    First,
    Sequence,
    And,
    Or,
}

impl Connector {
    fn text(self) -> &'static str {
        match self {
            Connector::First => "",
            Connector::Sequence => ";",
            Connector::And => "&&",
            Connector::Or => "||",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(Word),
    Operator(Connector),
}

/// One word of a command, with its expansions still to do.
#[derive(Debug, Default, PartialEq, Eq)]
struct Word {
    parts: Vec<Part>,
    /// The word has literal or quoted text, so it stays a word even when it expands to
    /// nothing (`''`); a word made only of unquoted expansions disappears when they are
    /// empty, as in bash.
    literal: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    /// `$NAME` or `${NAME}`.
    Variable(String),
    /// `$?`.
    LastStatus,
}

impl Word {
    fn is_empty(&self) -> bool {
        self.parts.is_empty() && !self.literal
    }

    fn push_text(&mut self, character: char) {
        self.literal = true;
        match self.parts.last_mut() {
            Some(Part::Text(text)) => text.push(character),
            _ => self.parts.push(Part::Text(character.to_string())),
        }
    }

    /// The word's text, or `None` when it vanishes.
    fn expand(&self, machine: &SshService, last_status: u8) -> Option<String> {
        let mut expanded = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => expanded.push_str(text),
                Part::LastStatus => expanded.push_str(&last_status.to_string()),
                Part::Variable(name) => {
                    let user = machine.admin_user.as_str();
                    match name.as_str() {
                        "HOME" | "PWD" => expanded.push_str(&format!("/home/{user}")),
                        "USER" | "LOGNAME" => expanded.push_str(user),
                        "HOSTNAME" => expanded.push_str(&machine.computer_name),
                        "SHELL" => expanded.push_str("/bin/bash"),
                        _ => {}
                    }
                }
            }
        }
        (self.literal || !expanded.is_empty()).then_some(expanded)
    }
}

/// Why a command line could not be parsed.
#[derive(Debug, PartialEq, Eq)]
enum SyntaxError {
    UnterminatedQuote(char),
    UnexpectedToken(&'static str),
    UnexpectedEnd,
    Unsupported(String),
}

impl SyntaxError {
    fn message(&self) -> String {
        match self {
            SyntaxError::UnterminatedQuote(quote) => {
                format!("bash: -c: line 1: unexpected EOF while looking for matching `{quote}'\n")
            }
            SyntaxError::UnexpectedToken(token) => {
                format!("bash: -c: line 1: syntax error near unexpected token `{token}'\n")
            }
            SyntaxError::UnexpectedEnd => {
                "bash: -c: line 1: syntax error: unexpected end of file\n".to_owned()
            }
            SyntaxError::Unsupported(syntax) => {
                format!("bash: `{syntax}' is not supported by this emulated shell (jit-emulator)\n")
            }
        }
    }
}

/// Splits a line into words and list operators, removing quotes; `$` expansions are
/// kept for [`Word::expand`].
fn tokenize(line: &str) -> Result<Vec<Token>, SyntaxError> {
    let mut tokens = Vec::new();
    let mut word = Word::default();
    let mut characters = line.chars().peekable();
    let finish_word = |tokens: &mut Vec<Token>, word: &mut Word| {
        if !word.is_empty() {
            tokens.push(Token::Word(std::mem::take(word)));
        }
    };
    while let Some(character) = characters.next() {
        match character {
            ' ' | '\t' | '\r' | '\n' => finish_word(&mut tokens, &mut word),
            '#' if word.is_empty() => break,
            ';' => {
                finish_word(&mut tokens, &mut word);
                tokens.push(Token::Operator(Connector::Sequence));
            }
            '&' | '|' => {
                finish_word(&mut tokens, &mut word);
                if characters.next_if_eq(&character).is_none() {
                    return Err(SyntaxError::Unsupported(character.to_string()));
                }
                tokens.push(Token::Operator(if character == '&' {
                    Connector::And
                } else {
                    Connector::Or
                }));
            }
            '<' | '>' | '(' | ')' | '`' => {
                return Err(SyntaxError::Unsupported(character.to_string()));
            }
            '\\' => {
                word.literal = true;
                match characters.next() {
                    Some('\n') | None => {}
                    Some(escaped) => word.push_text(escaped),
                }
            }
            '\'' => {
                word.literal = true;
                loop {
                    match characters.next() {
                        Some('\'') => break,
                        Some(quoted) => word.push_text(quoted),
                        None => return Err(SyntaxError::UnterminatedQuote('\'')),
                    }
                }
            }
            '"' => {
                word.literal = true;
                loop {
                    match characters.next() {
                        Some('"') => break,
                        Some('\\') => match characters.next() {
                            Some(escaped @ ('"' | '\\' | '$' | '`')) => word.push_text(escaped),
                            Some('\n') => {}
                            Some(other) => {
                                word.push_text('\\');
                                word.push_text(other);
                            }
                            None => return Err(SyntaxError::UnterminatedQuote('"')),
                        },
                        Some('$') => dollar(&mut characters, &mut word)?,
                        Some('`') => return Err(SyntaxError::Unsupported("`".to_owned())),
                        Some(quoted) => word.push_text(quoted),
                        None => return Err(SyntaxError::UnterminatedQuote('"')),
                    }
                }
            }
            '$' => dollar(&mut characters, &mut word)?,
            other => word.push_text(other),
        }
    }
    finish_word(&mut tokens, &mut word);
    Ok(tokens)
}

/// Reads what follows a `$` into `word`: `$?`, `$NAME`, `${NAME}`, or a plain `$`.
fn dollar(
    characters: &mut std::iter::Peekable<std::str::Chars<'_>>,
    word: &mut Word,
) -> Result<(), SyntaxError> {
    let is_name_character =
        |character: &char| character.is_ascii_alphanumeric() || *character == '_';
    match characters.peek().copied() {
        Some('?') => {
            characters.next();
            word.parts.push(Part::LastStatus);
        }
        Some('(') => return Err(SyntaxError::Unsupported("$(".to_owned())),
        Some('{') => {
            characters.next();
            let mut name = String::new();
            loop {
                match characters.next() {
                    Some('}') => break,
                    Some(character) if is_name_character(&character) => name.push(character),
                    Some(_) => return Err(SyntaxError::Unsupported("${…}".to_owned())),
                    None => return Err(SyntaxError::UnterminatedQuote('}')),
                }
            }
            word.parts.push(Part::Variable(name));
        }
        Some(first) if first.is_ascii_alphabetic() || first == '_' => {
            let mut name = String::new();
            while let Some(character) = characters.next_if(is_name_character) {
                name.push(character);
            }
            word.parts.push(Part::Variable(name));
        }
        _ => word.push_text('$'),
    }
    Ok(())
}

/// Groups tokens into simple commands, each with the operator that joins it to the one
/// before.
fn split_list(tokens: Vec<Token>) -> Result<Vec<(Connector, Vec<Word>)>, SyntaxError> {
    let mut commands = Vec::new();
    let mut connector = Connector::First;
    let mut words = Vec::new();
    for token in tokens {
        match token {
            Token::Word(word) => words.push(word),
            Token::Operator(operator) => {
                if words.is_empty() {
                    return Err(SyntaxError::UnexpectedToken(operator.text()));
                }
                commands.push((connector, std::mem::take(&mut words)));
                connector = operator;
            }
        }
    }
    if words.is_empty() {
        if matches!(connector, Connector::And | Connector::Or) {
            return Err(SyntaxError::UnexpectedEnd);
        }
    } else {
        commands.push((connector, words));
    }
    Ok(commands)
}

/// What the interactive shell wants sent to the client after some input.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ShellOutput {
    /// Bytes for the channel's standard output (on a terminal, also what a command writes
    /// to standard error, as a terminal shows both).
    pub(crate) stdout: Vec<u8>,
    /// Bytes for the channel's standard error (never used on a terminal).
    pub(crate) stderr: Vec<u8>,
    /// The shell ended with this exit status; the channel is to be closed.
    pub(crate) exit_status: Option<u32>,
}

/// Where the line editor is within an escape sequence (cursor keys and the like), which
/// it swallows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Started,
    /// After ESC `[` or ESC `O`, until the final byte.
    Sequence,
}

/// A login shell on one SSH channel.
#[derive(Debug)]
pub(crate) struct InteractiveShell {
    /// A pty was requested: echo input, show a prompt, edit lines, write `\r\n`.
    terminal: bool,
    line: Vec<u8>,
    escape: Escape,
    last_status: u8,
    finished: bool,
}

impl InteractiveShell {
    /// A new shell; `terminal` says whether the client asked for a pty.
    pub(crate) fn new(terminal: bool) -> Self {
        Self {
            terminal,
            line: Vec::new(),
            escape: Escape::None,
            last_status: 0,
            finished: false,
        }
    }

    /// What the shell writes when it starts: the prompt, on a terminal.
    pub(crate) fn start(&self, machine: &SshService) -> ShellOutput {
        let mut output = ShellOutput::default();
        self.prompt(machine, &mut output);
        output
    }

    /// Feeds bytes the client typed or piped in.
    pub(crate) fn input(&mut self, machine: &SshService, bytes: &[u8]) -> ShellOutput {
        let mut output = ShellOutput::default();
        for &byte in bytes {
            if self.finished {
                break;
            }
            if self.terminal {
                self.terminal_byte(machine, byte, &mut output);
            } else if byte == b'\n' {
                self.run_line(machine, &mut output);
            } else {
                self.push(byte);
            }
        }
        output
    }

    /// The client closed its input: a pending line still runs, then the shell exits with
    /// the last status, as bash does at end of file.
    pub(crate) fn end_of_input(&mut self, machine: &SshService) -> ShellOutput {
        let mut output = ShellOutput::default();
        if self.finished {
            return output;
        }
        if !self.line.is_empty() {
            self.run_line(machine, &mut output);
        }
        if !self.finished {
            self.finish(self.last_status, &mut output);
        }
        output
    }

    fn terminal_byte(&mut self, machine: &SshService, byte: u8, output: &mut ShellOutput) {
        match (self.escape, byte) {
            (Escape::Started, b'[' | b'O') => self.escape = Escape::Sequence,
            (Escape::Started, _) => self.escape = Escape::None,
            (Escape::Sequence, 0x40..=0x7e) => self.escape = Escape::None,
            (Escape::Sequence, _) => {}
            (Escape::None, 0x1b) => self.escape = Escape::Started,
            (Escape::None, b'\r' | b'\n') => {
                output.stdout.extend_from_slice(b"\r\n");
                self.run_line(machine, output);
            }
            (Escape::None, 0x7f | 0x08) => {
                if self.pop_character() {
                    output.stdout.extend_from_slice(b"\x08 \x08");
                }
            }
            (Escape::None, 0x03) => {
                // Ctrl-C drops the line being typed.
                self.line.clear();
                self.last_status = 130;
                output.stdout.extend_from_slice(b"^C\r\n");
                self.prompt(machine, output);
            }
            (Escape::None, 0x04) => {
                // Ctrl-D on an empty line ends a login shell.
                if self.line.is_empty() {
                    output.stdout.extend_from_slice(b"logout\r\n");
                    self.finish(self.last_status, output);
                }
            }
            (Escape::None, 0x15) => {
                // Ctrl-U erases the line.
                while self.pop_character() {
                    output.stdout.extend_from_slice(b"\x08 \x08");
                }
            }
            (Escape::None, byte) if byte < 0x20 => {}
            (Escape::None, byte) => {
                if self.push(byte) {
                    output.stdout.push(byte);
                }
            }
        }
    }

    /// Appends a byte to the line unless it is full; says whether it was kept.
    fn push(&mut self, byte: u8) -> bool {
        if self.line.len() < MAX_LINE_LENGTH {
            self.line.push(byte);
            true
        } else {
            false
        }
    }

    /// Removes the last character (all its UTF-8 bytes); says whether there was one.
    fn pop_character(&mut self) -> bool {
        let Some(mut last) = self.line.pop() else {
            return false;
        };
        while last & 0b1100_0000 == 0b1000_0000 {
            match self.line.pop() {
                Some(byte) => last = byte,
                None => break,
            }
        }
        true
    }

    fn run_line(&mut self, machine: &SshService, output: &mut ShellOutput) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
        let result = run_command_line(machine, &line, self.last_status);
        self.last_status = result.status;
        if self.terminal {
            // A terminal shows standard error too, and its line discipline turns `\n`
            // into `\r\n`.
            let text = format!("{}{}", result.stdout, result.stderr);
            output
                .stdout
                .extend_from_slice(text.replace('\n', "\r\n").as_bytes());
        } else {
            output.stdout.extend_from_slice(result.stdout.as_bytes());
            output.stderr.extend_from_slice(result.stderr.as_bytes());
        }
        if result.exit_requested {
            if self.terminal {
                output.stdout.extend_from_slice(b"logout\r\n");
            }
            self.finish(result.status, output);
        } else {
            self.prompt(machine, output);
        }
    }

    fn prompt(&self, machine: &SshService, output: &mut ShellOutput) {
        if self.terminal && !self.finished {
            output.stdout.extend_from_slice(
                format!("{}@{}:~$ ", machine.admin_user, machine.computer_name).as_bytes(),
            );
        }
    }

    fn finish(&mut self, status: u8, output: &mut ShellOutput) {
        self.finished = true;
        self.line.clear();
        output.exit_status = Some(u32::from(status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> SshService {
        SshService {
            host_key: super::super::keys::generate_ed25519(),
            admin_user: "azureuser".to_owned(),
            authorized_keys: Vec::new(),
            computer_name: "web-01".to_owned(),
        }
    }

    fn run(line: &str) -> CommandOutput {
        run_command_line(&machine(), line, 0)
    }

    fn printed(stdout: &str, status: u8) -> CommandOutput {
        CommandOutput {
            stdout: stdout.to_owned(),
            status,
            ..CommandOutput::default()
        }
    }

    #[test]
    fn the_basic_commands_answer_as_on_the_vm() {
        assert_eq!(run("hostname"), printed("web-01\n", 0));
        assert_eq!(run("whoami"), printed("azureuser\n", 0));
        assert_eq!(run("pwd"), printed("/home/azureuser\n", 0));
        assert_eq!(run("true"), printed("", 0));
        assert_eq!(run("false"), printed("", 1));
        assert_eq!(run(""), printed("", 0));
        assert_eq!(run("   # only a comment"), printed("", 0));
    }

    #[test]
    fn echo_joins_words_and_removes_quotes() {
        assert_eq!(run("echo"), printed("\n", 0));
        assert_eq!(run("echo  hello   world "), printed("hello world\n", 0));
        assert_eq!(
            run(r#"echo 'a  b' "c  d" e\ f"#),
            printed("a  b c  d e f\n", 0)
        );
        assert_eq!(run("echo -n no newline"), printed("no newline", 0));
        assert_eq!(run("echo '' x"), printed(" x\n", 0));
        assert_eq!(
            run(r#"echo "say \"hi\"" 'it''s'"#),
            printed("say \"hi\" its\n", 0)
        );
    }

    #[test]
    fn variables_expand_outside_single_quotes() {
        assert_eq!(
            run(r#"echo $USER "${HOME}" '$HOSTNAME' $HOSTNAME"#),
            printed("azureuser /home/azureuser $HOSTNAME web-01\n", 0)
        );
        assert_eq!(run("echo $UNSET x"), printed("x\n", 0));
        assert_eq!(run("echo costs $5"), printed("costs $5\n", 0));
        assert_eq!(
            run_command_line(&machine(), "echo $?", 7),
            printed("7\n", 0)
        );
    }

    #[test]
    fn lists_run_by_status() {
        assert_eq!(run("echo a; echo b"), printed("a\nb\n", 0));
        assert_eq!(run("false && echo no"), printed("", 1));
        assert_eq!(run("false || echo yes"), printed("yes\n", 0));
        assert_eq!(run("true && echo yes || echo no"), printed("yes\n", 0));
        assert_eq!(run("false; echo $?"), printed("1\n", 0));
        assert_eq!(run("echo trailing;"), printed("trailing\n", 0));
    }

    #[test]
    fn exit_ends_with_its_status_modulo_256() {
        let output = run("exit 3");
        assert_eq!((output.status, output.exit_requested), (3, true));
        let output = run("echo before; exit 300; echo after");
        assert_eq!(output.stdout, "before\n");
        assert_eq!((output.status, output.exit_requested), (44, true));
        assert_eq!(run("exit -1").status, 255);
        let output = run_command_line(&machine(), "exit", 5);
        assert_eq!((output.status, output.exit_requested), (5, true));
        let output = run("exit abc");
        assert_eq!((output.status, output.exit_requested), (2, true));
        assert_eq!(
            output.stderr,
            "bash: exit: abc: numeric argument required\n"
        );
        let output = run("exit 1 2");
        assert_eq!((output.status, output.exit_requested), (1, false));
    }

    #[test]
    fn unknown_commands_are_not_found() {
        let output = run("systemctl status sshd");
        assert_eq!(output.stdout, "");
        assert_eq!(output.stderr, "bash: systemctl: command not found\n");
        assert_eq!(output.status, 127);
    }

    #[test]
    fn uname_reports_a_linux_kernel() {
        assert_eq!(run("uname"), printed("Linux\n", 0));
        assert_eq!(run("uname -n"), printed("web-01\n", 0));
        assert_eq!(
            run("uname -rs"),
            printed(&format!("Linux {KERNEL_RELEASE}\n"), 0)
        );
        assert_eq!(
            run("uname -a"),
            printed(
                &format!(
                    "Linux web-01 {KERNEL_RELEASE} {KERNEL_VERSION} x86_64 x86_64 x86_64 GNU/Linux\n"
                ),
                0
            )
        );
        let output = run("uname -z");
        assert_eq!(output.status, 1);
        assert!(output.stderr.starts_with("uname: invalid option -- 'z'"));
    }

    #[test]
    fn syntax_outside_the_subset_is_an_error_not_a_wrong_answer() {
        for line in [
            "echo hi | wc",
            "echo hi > file",
            "echo $(hostname)",
            "echo `hostname`",
            "sleep 1 &",
        ] {
            let output = run(line);
            assert_eq!(output.status, 2, "{line}");
            assert_eq!(output.stdout, "", "{line}");
            assert!(
                output.stderr.contains("not supported"),
                "{line}: {}",
                output.stderr
            );
        }
        let output = run("echo 'unterminated");
        assert_eq!(output.status, 2);
        assert!(output.stderr.contains("matching `''"), "{}", output.stderr);
        let output = run("&& echo hi");
        assert_eq!(output.status, 2);
        assert!(
            output.stderr.contains("unexpected token `&&'"),
            "{}",
            output.stderr
        );
        assert_eq!(run("echo hi &&").status, 2);
    }

    #[test]
    fn without_a_terminal_the_shell_runs_lines_silently_and_exits_at_end_of_input() {
        let machine = machine();
        let mut shell = InteractiveShell::new(false);
        assert_eq!(shell.start(&machine), ShellOutput::default());
        let output = shell.input(&machine, b"hostname\nwho");
        assert_eq!(output.stdout, b"web-01\n");
        let output = shell.input(&machine, b"ami\nnope\n");
        assert_eq!(output.stdout, b"azureuser\n");
        assert_eq!(output.stderr, b"bash: nope: command not found\n");
        assert_eq!(output.exit_status, None);
        let output = shell.input(&machine, b"echo last");
        assert_eq!(output, ShellOutput::default());
        let output = shell.end_of_input(&machine);
        assert_eq!(output.stdout, b"last\n");
        assert_eq!(output.exit_status, Some(0));
    }

    #[test]
    fn without_a_terminal_exit_stops_reading() {
        let machine = machine();
        let mut shell = InteractiveShell::new(false);
        let output = shell.input(&machine, b"false\nexit\necho never\n");
        assert_eq!(output.stdout, b"");
        assert_eq!(output.exit_status, Some(1));
        assert_eq!(shell.end_of_input(&machine), ShellOutput::default());
    }

    #[test]
    fn on_a_terminal_the_shell_prompts_echoes_and_edits() {
        let machine = machine();
        let mut shell = InteractiveShell::new(true);
        assert_eq!(shell.start(&machine).stdout, b"azureuser@web-01:~$ ");
        let output = shell.input(&machine, b"whox\x7fami\r");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "whox\x08 \x08ami\r\nazureuser\r\nazureuser@web-01:~$ "
        );
        // Cursor keys are swallowed, not typed.
        let output = shell.input(&machine, b"\x1b[Ahostname\r");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "hostname\r\nweb-01\r\nazureuser@web-01:~$ "
        );
        // Standard error shows on the terminal.
        let output = shell.input(&machine, b"nope\r");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "nope\r\nbash: nope: command not found\r\nazureuser@web-01:~$ "
        );
        assert!(output.stderr.is_empty());
        let output = shell.input(&machine, b"exit 4\r");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "exit 4\r\nlogout\r\n"
        );
        assert_eq!(output.exit_status, Some(4));
    }

    #[test]
    fn on_a_terminal_ctrl_c_drops_the_line_and_ctrl_d_logs_out() {
        let machine = machine();
        let mut shell = InteractiveShell::new(true);
        let output = shell.input(&machine, b"echo x\x03");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "echo x^C\r\nazureuser@web-01:~$ "
        );
        let output = shell.input(&machine, b"\x04");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "logout\r\n");
        assert_eq!(output.exit_status, Some(130));
    }

    #[test]
    fn backspace_removes_a_whole_utf8_character() {
        let machine = machine();
        let mut shell = InteractiveShell::new(true);
        let _ = shell.input(&machine, "echo é".as_bytes());
        let _ = shell.input(&machine, b"\x7f");
        let output = shell.input(&machine, b"e\r");
        assert!(String::from_utf8_lossy(&output.stdout).contains("\r\ne\r\n"));
    }
}
