/// The one writer of the bodies of Detour's own pages: an HTML page for a browser navigation, the same facts as a
/// flat JSON object for anything else (CONTRACT section 6: "HTML or JSON by the same rule").
///
/// Guarantees: every text is HTML-escaped (or JSON-escaped); every page is `Cache-Control: no-store`; a HEAD
/// request gets the headers and no body.
public enum Page {
    /// Headers and body of a page with `title` and `message`, and a link when there is one to follow.
    ///
    /// - Parameter json: the fields of the JSON form, in order (an `error` code first, by convention).
    public static func render(
        title: String, message: String, link: (url: BrowserURL, text: String)? = nil,
        json fields: [(name: String, value: String)], client: ClientKind, isHead: Bool
    ) -> (headers: [HeaderField], body: String?) {
        guard client == .navigation else {
            return ([noStore, jsonType], isHead ? nil : JSON.object(fields))
        }
        let anchor = link.map { "<p><a href=\"\(HTML.escape($0.url.href))\">\(HTML.escape($0.text))</a></p>" } ?? ""
        let body = """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>\(HTML.escape(title))</title></head>
            <body><h1>\(HTML.escape(title))</h1><p>\(HTML.escape(message))</p>\(anchor)</body></html>

            """
        return ([noStore, htmlType], isHead ? nil : body)
    }

    static let noStore = HeaderField("Cache-Control", "no-store")
    static let htmlType = HeaderField("Content-Type", "text/html; charset=utf-8")
    static let jsonType = HeaderField("Content-Type", "application/json")
}
