//! Registry lists: search, tag and team filters, paging, and what a page shows after a change.

use super::*;

/// `?q=&tag=&team=&page=` of a list page.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub team: String,
    pub page: Option<usize>,
}

/// One page of a filtered list, with what the filter form and the pager show.
pub struct Listing {
    pub items: Vec<Value>,
    pub filters: Value,
    pub pager: Value,
}

pub(super) fn text_of(view: &Value, key: &str) -> String {
    view.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase()
}

impl ListQuery {
    /// Filters `views` (search in name, description, URI and URL; exact tag; team) and cuts
    /// out the page asked for. `teams` names the user's teams for the team filter.
    pub fn apply(&self, path: &str, views: Vec<Value>, teams: &[(String, String)]) -> Listing {
        let mut tags: Vec<String> = views
            .iter()
            .filter_map(|view| view["tags"].as_array())
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        tags.sort();
        tags.dedup();
        let needle = self.q.trim().to_lowercase();
        let matching: Vec<Value> = views
            .into_iter()
            .filter(|view| {
                needle.is_empty()
                    || ["name", "description", "uri", "uri_template", "url"]
                        .iter()
                        .any(|key| text_of(view, key).contains(&needle))
            })
            .filter(|view| {
                self.tag.is_empty()
                    || view["tags"]
                        .as_array()
                        .is_some_and(|tags| tags.iter().any(|t| t == self.tag.as_str()))
            })
            .filter(|view| self.team.is_empty() || view["team_id"] == self.team.as_str())
            .collect();
        let total = matching.len();
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page = self.page.unwrap_or(1).clamp(1, pages);
        let items = matching
            .into_iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .collect();
        let href = |page: usize| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (key, value) in [("q", &self.q), ("tag", &self.tag), ("team", &self.team)] {
                if !value.is_empty() {
                    query.append_pair(key, value);
                }
            }
            query.append_pair("page", &page.to_string());
            format!("/admin/{path}?{}", query.finish())
        };
        let teams: Vec<Value> = teams
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect();
        Listing {
            items,
            filters: json!({
                "path": path, "q": self.q, "tag": self.tag, "team": self.team,
                "tags": tags, "teams": teams,
                "active": !(self.q.is_empty() && self.tag.is_empty() && self.team.is_empty()),
            }),
            pager: json!({
                "page": page, "pages": pages, "total": total,
                "prev": (page > 1).then(|| href(page - 1)),
                "next": (page < pages).then(|| href(page + 1)),
            }),
        }
    }
}

/// The user's teams as `(id, name)`.
pub async fn team_names(state: &AppState, user: &ConsoleUser) -> Vec<(String, String)> {
    crate::service::identity::teams::list(&state.services, &user.principal)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|team| (team.id, team.name))
        .collect()
}

/// Puts a filtered page of `views` into a list page's context (`items`, `filters`, `pager`,
/// and `load_error` when the list could not be read: the page says so rather than showing an
/// empty list). `teams` are the user's teams, offered by the team filter.
pub fn list_into(
    context: &mut tera::Context,
    viewer: &crate::auth::Principal,
    teams: &[(String, String)],
    path: &str,
    query: &ListQuery,
    views: Result<Vec<Value>, ApiError>,
) {
    let (views, load_error) = match views {
        Ok(views) => (views, None),
        Err(error) => (
            Vec::new(),
            Some(format!("The list could not be read: {error}")),
        ),
    };
    context.insert("load_error", &load_error);
    let mut listing = query.apply(path, views, teams);
    // Only the actions the viewer may take are offered.
    for item in &mut listing.items {
        let ownership = ownership_of(item);
        for (flag, action) in [("may_update", "update"), ("may_delete", "delete")] {
            let may = viewer.permits(
                &format!("{path}.{action}"),
                crate::auth::On::Item(&ownership),
            );
            item[flag] = Value::Bool(may);
        }
    }
    context.insert("items", &listing.items);
    context.insert("filters", &listing.filters);
    context.insert("pager", &listing.pager);
}

/// Who owns a listed item and who may see it, from its view.
fn ownership_of(item: &Value) -> crate::auth::rbac::Ownership {
    let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
    crate::auth::rbac::Ownership {
        owner_email: text("owner_email"),
        team_id: text("team_id"),
        visibility: serde_json::from_value(item["visibility"].clone()).unwrap_or_default(),
    }
}

/// A redirect to `location` that shows `message` once on the next page (the flash cookie).
pub fn flash_redirect(location: &str, message: &str) -> HttpResponse {
    let cookie = crate::http::console::pages::cookie(FLASH_COOKIE, urlencode(message), 60, false);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .cookie(cookie)
        .finish()
}

pub(super) fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A page saying why an action was refused, with the status it deserves and a way back.
pub(super) fn problem(
    state: &AppState,
    user: &ConsoleUser,
    back: &str,
    error: &ApiError,
) -> HttpResponse {
    let mut context = user.context(back);
    context.insert("error", &error.to_string());
    context.insert("back", &format!("/admin/{back}"));
    state.console.page(
        actix_web::ResponseError::status_code(error),
        "problem.html",
        &context,
    )
}
