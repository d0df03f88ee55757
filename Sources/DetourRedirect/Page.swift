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
        title: String, message: String, button: Button? = nil, link: (url: BrowserURL, text: String)? = nil,
        json fields: [(name: String, value: String)], client: ClientKind, isHead: Bool
    ) -> (headers: [HeaderField], body: String?) {
        guard client == .navigation else {
            return ([noStore, jsonType], isHead ? nil : JSON.object(fields))
        }
        let form =
            button.map { button in
                let inputs = button.fields.map {
                    "<input type=\"hidden\" name=\"\(HTML.escape($0.name))\" value=\"\(HTML.escape($0.value))\">"
                }
                return "<form method=\"post\" action=\"\(HTML.escape(button.action))\">\(inputs.joined())"
                    + "<button type=\"submit\">\(HTML.escape(button.text))</button></form>"
            } ?? ""
        let anchor = link.map { "<p><a href=\"\(HTML.escape($0.url.href))\">\(HTML.escape($0.text))</a></p>" } ?? ""
        let body = """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>\(HTML.escape(title))</title></head>
            <body><h1>\(HTML.escape(title))</h1><p>\(HTML.escape(message))</p>\(form)\(anchor)</body></html>

            """
        return ([noStore, htmlType], isHead ? nil : body)
    }

    /// A button that POSTs hidden `fields` to `action` (a path on the page's own origin).
    public struct Button: Sendable {
        public var action: String
        public var fields: [(name: String, value: String)]
        public var text: String

        public init(action: String, fields: [(name: String, value: String)], text: String) {
            self.action = action
            self.fields = fields
            self.text = text
        }
    }

    static let noStore = HeaderField("Cache-Control", "no-store")
    static let htmlType = HeaderField("Content-Type", "text/html; charset=utf-8")
    static let jsonType = HeaderField("Content-Type", "application/json")
}
