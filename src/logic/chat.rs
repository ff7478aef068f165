//! The call's chat as the page keeps it: the conversation in order without duplicates, and a
//! message's text cut into plain text and web links.

use callqueue_protocol::Role;

/// A chat message as the page keeps it (the wire's `ChatMessage`, its time as the browser's
/// milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatLine {
    pub seq: u64,
    pub id: String,
    pub role: Role,
    pub name: Option<String>,
    pub text: String,
    /// When the server took it, ms since 1970.
    pub at: f64,
}

/// Takes messages into the conversation (kept in `seq` order); answers how many were new
/// (a message seen before, from a catch-up or a repeated acknowledgement, is not).
pub fn take(conversation: &mut Vec<ChatLine>, messages: Vec<ChatLine>) -> usize {
    let mut new = 0;
    for m in messages {
        if let Err(at) = conversation.binary_search_by_key(&m.seq, |c| c.seq) {
            conversation.insert(at, m);
            new += 1;
        }
    }
    new
}

/// A piece of a message's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    /// An `http(s)://` address, to be shown as a link to itself.
    Link(&'a str),
}

/// Cuts text into plain text and web links: a link starts with `https://` or `http://` (any
/// case) after a space or the start, runs to the next white space, and does not take the
/// punctuation that usually ends a sentence (`.`, `,`, `)`, …). No other scheme is ever a link.
///
/// By hand rather than with `linkify`: the customer's download is a budget, and this is the
/// one rule we need.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut plain = 0;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let starts_word = i == 0 || text[..i].ends_with(char::is_whitespace);
        let scheme = ["https://", "http://"].iter().find(|s| {
            rest.get(..s.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(s))
        });
        if let (true, Some(scheme)) = (starts_word, scheme) {
            let word = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let link =
                rest[..word].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '\'', '\u{22}']);
            if link.len() > scheme.len() {
                if plain < i {
                    out.push(Piece::Text(&text[plain..i]));
                }
                out.push(Piece::Link(link));
                i += link.len();
                plain = i;
                continue;
            }
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    if plain < text.len() {
        out.push(Piece::Text(&text[plain..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Piece::*;

    fn message(seq: u64) -> ChatLine {
        ChatLine {
            seq,
            id: format!("m{seq}"),
            role: Role::Patient,
            name: None,
            text: "hi".into(),
            at: 0.0,
        }
    }

    #[test]
    fn messages_are_kept_in_order_once() {
        let mut c = Vec::new();
        assert_eq!(take(&mut c, vec![message(2), message(1)]), 2);
        assert_eq!(
            take(&mut c, vec![message(2)]),
            0,
            "an acknowledgement seen twice"
        );
        assert_eq!(take(&mut c, vec![message(4), message(3), message(1)]), 2);
        let seqs: Vec<u64> = c.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }

    #[test]
    fn web_addresses_become_links_and_nothing_else_does() {
        assert_eq!(pieces("no links here"), [Text("no links here")]);
        assert_eq!(
            pieces("see https://example.com/a?b=1&c=2."),
            [
                Text("see "),
                Link("https://example.com/a?b=1&c=2"),
                Text(".")
            ]
        );
        assert_eq!(
            pieces("HTTP://EXAMPLE.COM\nnext line"),
            [Link("HTTP://EXAMPLE.COM"), Text("\nnext line")]
        );
        assert_eq!(
            pieces("(http://a.example/x), then"),
            [Text("(http://a.example/x), then")],
            "a link starts a word"
        );
        assert_eq!(
            pieces("two: https://a.example https://b.example/ü"),
            [
                Text("two: "),
                Link("https://a.example"),
                Text(" "),
                Link("https://b.example/ü")
            ]
        );
        for never in [
            "javascript:alert(1)",
            "data:text/html,<b>x</b>",
            "ftp://x",
            "https://",
            "xhttps://a.example",
            "<a href='https://evil.example'>x</a>",
        ] {
            assert!(
                pieces(never).iter().all(|p| matches!(p, Text(_))),
                "{never}: {:?}",
                pieces(never)
            );
        }
        assert_eq!(pieces(""), []);
        assert_eq!(
            pieces("ü https://ä.example"),
            [Text("ü "), Link("https://ä.example")]
        );
    }
}
