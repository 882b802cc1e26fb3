//! The request methods the server understands (RFC 9110 §9).
//!
//! A request whose method is not one of these is answered `501 Not
//! Implemented` by the [`Session`](super::Session) without reaching the
//! application (RFC 9110 §9.1); a known method a route does not take is the
//! application's to answer `405 Method Not Allowed` (see
//! [`techempower`](super::techempower)).

/// A standard HTTP method.
///
/// Parsed once per request from the request line; compare with `==` against
/// a string (`Method::Get == "GET"`) or match on it.
///
/// With the `http-types` feature, converts to and from the `http` crate's
/// `http::Method` (`From` one way, `TryFrom` the other: that type also
/// carries extension methods this server answers 501).
///
/// ```
/// use netloop::protocol::http::Method;
/// assert_eq!(Method::from_bytes(b"PATCH"), Some(Method::Patch));
/// assert_eq!(Method::from_bytes(b"BREW"), None);
/// assert_eq!(Method::Get, "GET");
/// assert!(Method::Head.is_safe());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH` (RFC 5789)
    Patch,
}

impl Method {
    /// Every method, in declaration order.
    pub const ALL: [Method; 9] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Connect,
        Method::Options,
        Method::Trace,
        Method::Patch,
    ];

    /// The method named by `token` (case-sensitive, as RFC 9110 §9.1 says),
    /// or `None` for an extension method.
    #[inline]
    pub fn from_bytes(token: &[u8]) -> Option<Method> {
        Some(match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => return None,
        })
    }

    /// The method's name, e.g. `"GET"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
        }
    }

    /// Safe methods (RFC 9110 §9.2.1): `GET`, `HEAD`, `OPTIONS`, `TRACE`.
    pub fn is_safe(self) -> bool {
        matches!(
            self,
            Method::Get | Method::Head | Method::Options | Method::Trace
        )
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Method {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Method {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(feature = "http-types")]
mod interop {
    use super::Method;
    use http_crate as http;

    impl From<Method> for http::Method {
        fn from(m: Method) -> http::Method {
            match m {
                Method::Get => http::Method::GET,
                Method::Head => http::Method::HEAD,
                Method::Post => http::Method::POST,
                Method::Put => http::Method::PUT,
                Method::Delete => http::Method::DELETE,
                Method::Connect => http::Method::CONNECT,
                Method::Options => http::Method::OPTIONS,
                Method::Trace => http::Method::TRACE,
                Method::Patch => http::Method::PATCH,
            }
        }
    }

    /// An `http::Method` that is an extension method (not one of the nine
    /// standard ones this server implements).
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("extension method {0} is not implemented")]
    pub struct ExtensionMethod(pub http::Method);

    impl TryFrom<&http::Method> for Method {
        type Error = ExtensionMethod;
        fn try_from(m: &http::Method) -> Result<Method, ExtensionMethod> {
            Method::from_bytes(m.as_str().as_bytes()).ok_or_else(|| ExtensionMethod(m.clone()))
        }
    }

    impl PartialEq<http::Method> for Method {
        fn eq(&self, other: &http::Method) -> bool {
            self.as_str() == other.as_str()
        }
    }
}

#[cfg(feature = "http-types")]
pub use interop::ExtensionMethod;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_names() {
        for m in Method::ALL {
            assert_eq!(Method::from_bytes(m.as_str().as_bytes()), Some(m));
            assert_eq!(m.to_string(), m.as_str());
        }
        assert_eq!(Method::from_bytes(b"get"), None);
        assert_eq!(Method::from_bytes(b""), None);
    }

    #[cfg(feature = "http-types")]
    #[test]
    fn converts_with_http_crate() {
        use http_crate as http;
        for m in Method::ALL {
            let h = http::Method::from(m);
            assert_eq!(h.as_str(), m.as_str());
            assert_eq!(Method::try_from(&h), Ok(m));
            assert_eq!(m, h);
        }
        let brew = http::Method::from_bytes(b"BREW").unwrap();
        assert!(Method::try_from(&brew).is_err());
    }
}
