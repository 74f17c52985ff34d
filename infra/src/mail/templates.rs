//! The mails eshop sends: each template renders a subject, a plain-text part and an HTML part
//! from a JSON context (kept in the sent-log, so a retry renders the same mail). No I/O.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    Welcome,
    OrderConfirmation,
    PaymentDeclined,
    OrderCancelled,
    PaymentRefunded,
    SalesSummary,
    BookFair,
    /// A one-time link to reset a forgotten password.
    PasswordReset,
    /// A one-time link to set the password of an account an admin created.
    SetPassword,
}

impl Template {
    pub const ALL: [Template; 9] = [
        Self::Welcome,
        Self::OrderConfirmation,
        Self::PaymentDeclined,
        Self::OrderCancelled,
        Self::PaymentRefunded,
        Self::SalesSummary,
        Self::BookFair,
        Self::PasswordReset,
        Self::SetPassword,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::OrderConfirmation => "order_confirmation",
            Self::PaymentDeclined => "payment_declined",
            Self::OrderCancelled => "order_cancelled",
            Self::PaymentRefunded => "payment_refunded",
            Self::SalesSummary => "sales_summary",
            Self::BookFair => "book_fair",
            Self::PasswordReset => "password_reset",
            Self::SetPassword => "set_password",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|template| template.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// `1999` → `19.99` (amounts are integer cents everywhere).
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn text<'a>(context: &'a Value, field: &str) -> &'a str {
    context.get(field).and_then(Value::as_str).unwrap_or("")
}

fn cents(context: &Value, field: &str) -> i64 {
    context.get(field).and_then(Value::as_i64).unwrap_or(0)
}

fn greeting(context: &Value) -> String {
    let name = text(context, "name");
    if name.is_empty() {
        "Hello,".to_string()
    } else {
        format!("Hello {name},")
    }
}

/// One mail from paragraphs and an optional table: the text part lists the rows, the HTML
/// part shows a table; everything that came from data is escaped in the HTML.
fn compose(
    subject: String,
    context: &Value,
    paragraphs: &[String],
    table: Option<(&[&str], Vec<Vec<String>>)>,
) -> Rendered {
    let greeting = greeting(context);
    let mut text = format!("{greeting}\n\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html><body>\n<p>{}</p>\n",
        escape_html(&greeting)
    );
    for paragraph in paragraphs {
        text.push_str(paragraph);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>\n", escape_html(paragraph)));
    }
    if let Some((headings, rows)) = table {
        html.push_str("<table>\n<tr>");
        for heading in headings {
            html.push_str(&format!("<th>{}</th>", escape_html(heading)));
        }
        html.push_str("</tr>\n");
        for row in rows {
            text.push_str(&format!("- {}\n", row.join("  ")));
            html.push_str("<tr>");
            for cell in &row {
                html.push_str(&format!("<td>{}</td>", escape_html(cell)));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</table>\n");
        text.push('\n');
    }
    text.push_str("-- \neshop\n");
    html.push_str("<p>&mdash; eshop</p>\n</body></html>\n");
    Rendered {
        subject,
        text,
        html,
    }
}

fn order_lines(context: &Value) -> Vec<Vec<String>> {
    context
        .get("lines")
        .and_then(Value::as_array)
        .map(|lines| {
            lines
                .iter()
                .map(|line| {
                    let quantity = line.get("quantity").and_then(Value::as_i64).unwrap_or(0);
                    let unit = line
                        .get("unit_price_cents")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    vec![
                        text(line, "title").to_string(),
                        format!("{quantity} x {}", money(unit)),
                        money(unit.saturating_mul(quantity)),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Renders `template` with `context` (the fields each template reads are listed in the mailer).
pub fn render(template: Template, context: &Value) -> Rendered {
    let order = text(context, "order_id");
    match template {
        Template::Welcome => compose(
            "Welcome to eshop".to_string(),
            context,
            &[format!(
                "your account {} is ready. Happy reading!",
                text(context, "username")
            )],
            None,
        ),
        Template::OrderConfirmation => compose(
            format!("Your order {order} is confirmed"),
            context,
            &[
                format!("thank you for your order {order}. It is confirmed and paid."),
                format!("Total: {}", money(cents(context, "total_cents"))),
            ],
            Some((&["item", "quantity", "amount"], order_lines(context))),
        ),
        Template::PaymentDeclined => compose(
            format!("Payment declined for order {order}"),
            context,
            &[format!(
                "the payment of {} for your order {order} was declined ({}). The order was not \
                 placed; nothing was charged.",
                money(cents(context, "amount_cents")),
                text(context, "reason")
            )],
            None,
        ),
        Template::OrderCancelled => compose(
            format!("Your order {order} is cancelled"),
            context,
            &[format!(
                "your order {order} was cancelled ({}). Anything reserved for it was released.",
                text(context, "reason")
            )],
            None,
        ),
        Template::PaymentRefunded => compose(
            format!("Refund for order {order}"),
            context,
            &[format!(
                "we refunded {} for your order {order}.",
                money(cents(context, "amount_cents"))
            )],
            None,
        ),
        Template::SalesSummary => {
            let top = context
                .get("top_products")
                .and_then(Value::as_array)
                .map(|products| {
                    products
                        .iter()
                        .map(|product| {
                            vec![
                                text(product, "title").to_string(),
                                product
                                    .get("quantity")
                                    .and_then(Value::as_i64)
                                    .unwrap_or(0)
                                    .to_string(),
                                money(cents(product, "revenue_cents")),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            compose(
                format!("Sales summary for {}", text(context, "day")),
                context,
                &[format!(
                    "on {}: {} confirmed orders, revenue {}.",
                    text(context, "day"),
                    context.get("orders").and_then(Value::as_i64).unwrap_or(0),
                    money(cents(context, "revenue_cents"))
                )],
                Some((&["top product", "copies", "revenue"], top)),
            )
        }
        Template::PasswordReset => compose(
            "Reset your eshop password".to_string(),
            context,
            &[
                format!(
                    "someone (we hope you) asked to reset the password of your account {}. \
                     Follow this link within {} minutes to choose a new one; it works once:",
                    text(context, "username"),
                    context
                        .get("valid_minutes")
                        .and_then(Value::as_i64)
                        .unwrap_or(30)
                ),
                text(context, "link").to_string(),
                "If you did not ask for it, ignore this mail: your password stays as it is."
                    .to_string(),
            ],
            None,
        ),
        Template::SetPassword => compose(
            "Your eshop account is ready: choose a password".to_string(),
            context,
            &[
                format!(
                    "an account {} was opened for you. Follow this link within {} hours to \
                     choose your password; it works once:",
                    text(context, "username"),
                    context
                        .get("valid_minutes")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                        / 60
                ),
                text(context, "link").to_string(),
            ],
            None,
        ),
        Template::BookFair => compose(
            format!("The eshop book fair {}", text(context, "year")),
            context,
            &[format!(
                "the yearly eshop book fair opens this month. {}",
                text(context, "message")
            )],
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_is_exact() {
        assert_eq!(money(1999), "19.99");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(-250), "-2.50");
    }

    #[test]
    fn order_confirmation_lists_lines_and_total_and_escapes_html() {
        let rendered = render(
            Template::OrderConfirmation,
            &json!({"name": "Ann", "order_id": "o-1", "total_cents": 4997,
                    "lines": [{"title": "Dune <1>", "quantity": 2, "unit_price_cents": 1999},
                              {"title": "Emma", "quantity": 1, "unit_price_cents": 999}]}),
        );
        assert_eq!(rendered.subject, "Your order o-1 is confirmed");
        assert!(rendered.text.contains("Total: 49.97"), "{}", rendered.text);
        assert!(rendered.text.contains("Dune <1>  2 x 19.99  39.98"));
        assert!(rendered.html.contains("<td>Dune &lt;1&gt;</td>"));
        assert!(!rendered.html.contains("Dune <1>"));
    }

    #[test]
    fn every_template_has_a_name_that_parses_back() {
        for template in Template::ALL {
            assert_eq!(Template::parse(template.name()), Some(template));
        }
    }
}
