//! `[web.theme]`: the Region's look on the front office's pages (issue 20,
//! item 2): its name, logo, main colour, contact and legal notice. The logo is
//! read once, when the configuration is, and embedded in the pages as a `data:`
//! URI (the pages fetch nothing); the colour must keep white text readable
//! (WCAG 2.1 AA, 4.5:1).

use figment::Figment;
use figment::value::magic::RelativePathBuf;
use serde::Serialize;

use super::{Region, get, push_key};
use crate::diag::Problems;

/// The main colour when none is set: a sober dark blue (contrast 11:1 with white).
pub const DEFAULT_COLOUR: &str = "#003b6f";
/// The largest logo read, in bytes: it is sent within every page.
pub const MAX_LOGO_BYTES: u64 = 200 * 1024;
/// The least contrast of white text on the main colour (WCAG 2.1 AA, normal text).
pub const MIN_CONTRAST: f64 = 4.5;

/// The Region's look on the front office's pages.
#[derive(Debug, Clone, Serialize)]
pub struct Theme {
    /// The name in the header and the pages' titles (`[region] name` by default).
    pub name: String,
    /// The logo as a `data:` URI (base64), or none.
    pub logo: Option<String>,
    /// The main colour, `#rrggbb` (lower case): header, headings, links, buttons.
    pub colour: String,
    /// The contact address of the footer (`[region] email` by default).
    pub email: Option<String>,
    /// The contact phone of the footer (`[region] phone` by default).
    pub phone: Option<String>,
    /// The address of the legal notice, an http(s) URL, or none.
    pub legal_notice: Option<String>,
}

impl Default for Theme {
    fn default() -> Self {
        Self {
            name: "Région".to_owned(),
            logo: None,
            colour: DEFAULT_COLOUR.to_owned(),
            email: None,
            phone: None,
            legal_notice: None,
        }
    }
}

/// Reads `[web.theme]`, `region` giving the defaults (none: `[region]` has a
/// problem, reported on its own; the theme's keys are checked all the same).
pub(super) fn theme(figment: &Figment, region: Option<&Region>, p: &mut Problems) -> Option<Theme> {
    let mut text = |key: &str| {
        get::<String>(figment, key, p).map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
    };
    let (name, colour, email, phone, legal) = (
        text("web.theme.name"),
        text("web.theme.colour"),
        text("web.theme.email"),
        text("web.theme.phone"),
        text("web.theme.legal_notice"),
    );
    let logo = get::<RelativePathBuf>(figment, "web.theme.logo", p).and_then(|path| {
        if path
            .original()
            .as_os_str()
            .to_string_lossy()
            .trim()
            .is_empty()
        {
            return Some(None);
        }
        let path = path.relative();
        logo(&path)
            .map(Some)
            .map_err(|why| push_key(figment, "web.theme.logo", why, p))
            .ok()
    });
    let colour = colour.and_then(|colour| {
        let colour = colour.unwrap_or_else(|| DEFAULT_COLOUR.to_owned());
        main_colour(&colour)
            .map_err(|why| push_key(figment, "web.theme.colour", why, p))
            .ok()
    });
    let email = email.and_then(|email| match email {
        Some(email) if crate::value::parse_emails(&email).is_err() => {
            push_key(
                figment,
                "web.theme.email",
                format!("'{email}' is not an e-mail address"),
                p,
            );
            None
        }
        email => Some(email),
    });
    let legal = legal.and_then(|legal| match legal {
        Some(text) => legal_notice(&text)
            .map(Some)
            .map_err(|why| push_key(figment, "web.theme.legal_notice", why, p))
            .ok(),
        None => Some(None),
    });
    let region = region?;
    Some(Theme {
        name: name?.unwrap_or_else(|| region.name.clone()),
        logo: logo?,
        colour: colour?,
        email: email?.or_else(|| region.email.clone()),
        phone: phone?.or_else(|| region.phone.clone()),
        legal_notice: legal?,
    })
}

/// The contrast ratio of white text on `#rrggbb` (WCAG 2.1's relative
/// luminance), or none when `colour` is not `#rrggbb` (pure).
pub fn contrast_with_white(colour: &str) -> Option<f64> {
    let hex = colour.strip_prefix('#')?;
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |i: usize| {
        let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).ok()?) / 255.0;
        Some(if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        })
    };
    let luminance = 0.2126 * channel(0)? + 0.7152 * channel(2)? + 0.0722 * channel(4)?;
    Some(1.05 / (luminance + 0.05))
}

/// The main colour as the pages write it (`#rrggbb`), or why not (pure).
fn main_colour(text: &str) -> Result<String, String> {
    let ratio = contrast_with_white(text)
        .ok_or_else(|| format!("'{text}' is not a colour written #RRGGBB (\"#003b6f\")"))?;
    // Rounded down, so that 4.49 never reads as 4.5.
    if ratio < MIN_CONTRAST {
        return Err(format!(
            "'{text}' gives white text a contrast of {:.2}:1, under the 4.5:1 that WCAG 2.1 AA \
             asks: choose a darker colour",
            (ratio * 100.0).floor() / 100.0
        ));
    }
    Ok(text.to_ascii_lowercase())
}

/// The legal notice's address, or why it cannot be one (pure).
fn legal_notice(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|_| {
        format!(
            "'{text}' is not an address like \"https://www.region.example.org/mentions-legales\""
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "'{text}' must be an http:// or https:// address with a host"
        ));
    }
    Ok(url.to_string())
}

/// The logo at `path` as a `data:` URI, or why not: missing, unreadable, larger
/// than [`MAX_LOGO_BYTES`], or neither PNG, JPEG nor SVG (by its content).
fn logo(path: &std::path::Path) -> Result<String, String> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if size > MAX_LOGO_BYTES {
        return Err(format!(
            "{shown} is {size} bytes, more than the {MAX_LOGO_BYTES} a logo may weigh \
             (it is sent within every page)"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let kind = image_type(&bytes).ok_or_else(|| {
        format!("{shown} is not a PNG, JPEG or SVG image (read from its content)")
    })?;
    Ok(format!(
        "data:{kind};base64,{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes)
    ))
}

/// The media type of an image, from its first bytes (pure).
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some("image/jpeg");
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.trim_start_matches('\u{feff}').trim_start();
    (start.starts_with('<') && text.contains("<svg")).then_some("image/svg+xml")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::tests::write;

    #[test]
    fn contrast_follows_wcag() {
        let ratio = |c| contrast_with_white(c).unwrap();
        assert!((ratio("#000000") - 21.0).abs() < 1e-9);
        assert!((ratio("#ffffff") - 1.0).abs() < 1e-9);
        // WebAIM's checker: #767676 on white is 4.54:1, #777777 is 4.48:1.
        assert!(
            (ratio("#767676") - 4.54).abs() < 0.01,
            "{}",
            ratio("#767676")
        );
        assert!(
            (ratio("#777777") - 4.48).abs() < 0.01,
            "{}",
            ratio("#777777")
        );
        assert!(ratio(DEFAULT_COLOUR) > 10.0);
        for bad in ["003b6f", "#03b6f", "#00zz6f", "#003b6f0", "bleu"] {
            assert_eq!(contrast_with_white(bad), None, "{bad}");
        }
        assert_eq!(main_colour("#003B6F").unwrap(), "#003b6f");
        assert!(main_colour("#767676").is_ok());
        let error = main_colour("#777777").unwrap_err();
        assert!(
            error.contains("contrast of 4.47:1") || error.contains("contrast of 4.48:1"),
            "{error}"
        );
        assert!(main_colour("bleu").unwrap_err().contains("#RRGGBB"));
    }

    #[test]
    fn the_theme_defaults_to_the_region() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "[region]\nname = \"Région Test\"\nemail = \"aides@region.test\"\nphone = \"01 02 03 04 05\"\n",
        );
        let theme = Config::load(Some(&path)).unwrap().web.theme;
        assert_eq!(theme.name, "Région Test");
        assert_eq!(theme.email.as_deref(), Some("aides@region.test"));
        assert_eq!(theme.phone.as_deref(), Some("01 02 03 04 05"));
        assert_eq!(theme.colour, DEFAULT_COLOUR);
        assert_eq!((theme.logo, theme.legal_notice), (None, None));
    }

    #[test]
    fn a_theme_is_read_with_its_logo() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("logo.svg"),
            "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
        )
        .unwrap();
        let path = write(
            dir.path(),
            "[web.theme]\nname = \"Ma Région\"\nlogo = \"logo.svg\"\ncolour = \"#6A1B9A\"\n\
             email = \"contact@region.test\"\nphone = \"0800 000 000\"\n\
             legal_notice = \"https://region.test/mentions-legales\"\n",
        );
        let theme = Config::load(Some(&path)).unwrap().web.theme;
        assert_eq!(theme.name, "Ma Région");
        assert!(
            theme
                .logo
                .unwrap()
                .starts_with("data:image/svg+xml;base64,PHN2Zy")
        );
        assert_eq!(theme.colour, "#6a1b9a");
        assert_eq!(theme.email.as_deref(), Some("contact@region.test"));
        assert_eq!(theme.phone.as_deref(), Some("0800 000 000"));
        assert_eq!(
            theme.legal_notice.as_deref(),
            Some("https://region.test/mentions-legales")
        );
    }

    #[test]
    fn each_refusal_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let load = |theme: &str| {
            let path = write(dir.path(), &format!("[web.theme]\n{theme}\n"));
            Config::load(Some(&path)).unwrap_err().to_string()
        };
        std::fs::write(dir.path().join("big.png"), {
            let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
            big.resize(200 * 1024 + 1, 0);
            big
        })
        .unwrap();
        std::fs::write(dir.path().join("logo.gif"), b"GIF89a....").unwrap();
        std::fs::write(dir.path().join("ok.png"), b"\x89PNG\r\n\x1a\nrest").unwrap();
        std::fs::write(dir.path().join("ok.jpg"), [0xff, 0xd8, 0xff, 0xe0, 0]).unwrap();
        for (theme, expected) in [
            ("logo = \"absent.png\"", "key `web.theme.logo`: cannot read"),
            ("logo = \"big.png\"", "key `web.theme.logo`:"),
            ("logo = \"big.png\"", "204801 bytes, more than the 204800"),
            ("logo = \"logo.gif\"", "is not a PNG, JPEG or SVG image"),
            ("logo = \".\"", "key `web.theme.logo`:"),
            (
                "colour = \"#ffcc00\"",
                "key `web.theme.colour`: '#ffcc00' gives white text a contrast of 1.51:1",
            ),
            (
                "colour = \"blue\"",
                "key `web.theme.colour`: 'blue' is not a colour written #RRGGBB",
            ),
            (
                "email = \"nobody\"",
                "key `web.theme.email`: 'nobody' is not an e-mail address",
            ),
            (
                "legal_notice = \"ftp://region.test/ml\"",
                "key `web.theme.legal_notice`: 'ftp://region.test/ml' must be an http",
            ),
            (
                "legal_notice = \"mentions\"",
                "key `web.theme.legal_notice`: 'mentions' is not an address",
            ),
            ("colour = 3", "key `web.theme.colour`: invalid type"),
            ("font = \"Arial\"", "key `web.theme.font`: unknown key"),
        ] {
            let text = load(theme);
            assert!(
                text.contains(expected),
                "{theme}: missing {expected:?} in\n{text}"
            );
        }
        for fine in ["logo = \"ok.png\"", "logo = \"ok.jpg\"", "logo = \"\""] {
            let path = write(dir.path(), &format!("[web.theme]\n{fine}\n"));
            Config::load(Some(&path)).unwrap_or_else(|e| panic!("{fine}: {e}"));
        }
    }
}
