//! The page shell: head, left navigation, the signed-in person, the confirm dialog.

use super::Signed;
use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

/// Which navigation entry is the current page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Keys,
    NewKey,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Keyward" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

/// A page without navigation (sign-in, password change, errors).
pub fn bare(title: &str, body: &Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body.bare {
                    header.brand-bar { span.brand { "Keyward" } }
                    (body)
                }
            }
        }
        .into_string(),
    )
}

/// A console page: left navigation, the person and sign-out, then `body`.
pub fn page(signed: &Signed, nav: Nav, title: &str, body: &Markup) -> Html<String> {
    let item = |target: Nav, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(nav == target).then_some("page")] { (label) } }
        }
    };
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    div.shell {
                        nav.sidebar aria-label="Main" {
                            div.brand { "Keyward" }
                            p.nav-heading { "Access control" }
                            ul {
                                (item(Nav::Keys, "/console/keys", "API Keys"))
                                (item(Nav::NewKey, "/console/keys/new", "New API Key"))
                            }
                            div.whoami {
                                span.who { (signed.user.email.as_deref().unwrap_or(&signed.user.name)) }
                                form method="post" action="/console/sign-out" {
                                    input type="hidden" name="csrf" value=(signed.session.csrf);
                                    button.link-button type="submit" { "Sign out" }
                                }
                            }
                        }
                        main.content { (body) }
                    }
                    dialog #confirm-dialog aria-labelledby="confirm-title" {
                        form method="dialog" {
                            h2 #confirm-title { "Are you sure?" }
                            p #confirm-text {}
                            div.dialog-actions {
                                button.button type="submit" value="cancel" { "Cancel" }
                                button.button.danger #confirm-ok type="submit" value="ok" { "Delete" }
                            }
                        }
                    }
                }
            }
        }
        .into_string(),
    )
}

/// A date and time as people read it, in UTC.
pub fn when(t: Option<keyward_core::clock::Timestamp>, none: &str) -> String {
    t.map_or_else(|| none.to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// A date and time for dense tables, whose header says the zone.
pub fn when_short(t: Option<keyward_core::clock::Timestamp>, none: &str) -> String {
    t.map_or_else(|| none.to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}
