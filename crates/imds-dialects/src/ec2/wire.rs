//! EC2's wire strings: content types and the exact error page.

/// Content type of every listing and leaf, JSON leaves included.
pub const TEXT_PLAIN: &str = "text/plain";
/// Content type of `user-data`.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// Content type of error pages.
pub const TEXT_HTML: &str = "text/html";

/// The 339-byte page EC2 sends with every 404; scripts grep for `404 - Not Found`.
pub const NOT_FOUND_PAGE: &str = "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n\
<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\
\t\t \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n \
<head>\n  \
<title>404 - Not Found</title>\n \
</head>\n \
<body>\n  \
<h1>404 - Not Found</h1>\n \
</body>\n\
</html>\n";
