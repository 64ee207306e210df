//! Just enough HTML reading to fill in forms as a browser would: each form's action and its hidden
//! fields (values unescaped).

#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub hidden: Vec<(String, String)>,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub fn forms(html: &str) -> Vec<Form> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        let body = &rest[start..];
        let end = body.find("</form>").unwrap_or(body.len());
        let form = &body[..end];
        let open_end = form.find('>').unwrap_or(form.len());
        let action = attr(&form[..open_end], "action").unwrap_or_default();
        let mut hidden = Vec::new();
        let mut inputs = form;
        while let Some(i) = inputs.find("<input") {
            let tag_end = inputs[i..].find('>').map_or(inputs.len(), |e| i + e);
            let tag = &inputs[i..tag_end];
            if tag.contains("type=\"hidden\"") {
                if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
                    hidden.push((n, v));
                }
            }
            inputs = &inputs[tag_end..];
        }
        out.push(Form { action, hidden });
        rest = &body[end..];
    }
    out
}
