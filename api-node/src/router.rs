//! The URL map, in one place. Resolving a path gives the route and the
//! methods it allows, so a known path with a wrong method is a 405 with
//! `Allow`, and an unknown path a 404.

use http::Method;
use uuid::Uuid;

/// Every route the api-node serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/auth/register`
    Register,
    /// `POST /api/auth/login`
    Login,
    /// `POST /api/auth/logout`
    Logout,
    /// `GET | PUT /api/profile`
    Profile,
    /// `GET | POST /api/tasks`
    Tasks,
    /// `GET | PUT | DELETE /api/tasks/:id`, with the id if it is one (a
    /// hyphenated UUID, in any case); None answers 400 once the caller is
    /// authenticated.
    Task(Option<Uuid>),
    /// `GET /healthz`
    Healthz,
    /// `GET /readyz`
    Readyz,
    /// `GET /metrics`
    Metrics,
    /// `GET /openapi.json`
    OpenApi,
}

impl Route {
    /// The route for `path`, if any.
    pub fn resolve(path: &str) -> Option<Route> {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        Some(match path {
            "/api/auth/register" => Route::Register,
            "/api/auth/login" => Route::Login,
            "/api/auth/logout" => Route::Logout,
            "/api/profile" => Route::Profile,
            "/api/tasks" => Route::Tasks,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            "/openapi.json" => Route::OpenApi,
            _ => {
                let id = path.strip_prefix("/api/tasks/")?;
                if id.is_empty() || id.contains('/') {
                    return None;
                }
                Route::Task(task_id(id))
            }
        })
    }

    /// The `Allow` header value: the methods this route answers.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Register | Route::Login | Route::Logout => "POST",
            Route::Profile => "GET, PUT",
            Route::Tasks => "GET, POST",
            Route::Task(_) => "GET, PUT, DELETE",
            Route::Healthz | Route::Readyz | Route::Metrics | Route::OpenApi => "GET",
        }
    }

    /// Whether `method` is one this route answers (the methods of
    /// [`Route::allow`]: a test holds the two together).
    pub fn allows(&self, method: &Method) -> bool {
        match self {
            Route::Register | Route::Login | Route::Logout => method == Method::POST,
            Route::Profile => matches!(*method, Method::GET | Method::PUT),
            Route::Tasks => matches!(*method, Method::GET | Method::POST),
            Route::Task(_) => matches!(*method, Method::GET | Method::PUT | Method::DELETE),
            Route::Healthz | Route::Readyz | Route::Metrics | Route::OpenApi => {
                method == Method::GET
            }
        }
    }

    /// A label for metrics and logs with no ids in it, so series stay few.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Register => "/api/auth/register",
            Route::Login => "/api/auth/login",
            Route::Logout => "/api/auth/logout",
            Route::Profile => "/api/profile",
            Route::Tasks => "/api/tasks",
            Route::Task(_) => "/api/tasks/:id",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
        }
    }

    /// Every route's label and allowed methods, for checking the OpenAPI
    /// document against the router.
    pub fn table() -> Vec<(&'static str, &'static str)> {
        Self::ALL.iter().map(|r| (r.label(), r.allow())).collect()
    }

    /// One of each route.
    const ALL: [Route; 10] = [
        Route::Register,
        Route::Login,
        Route::Logout,
        Route::Profile,
        Route::Tasks,
        Route::Task(None),
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::OpenApi,
    ];
}

/// A task id from the path: a hyphenated UUID, in any case.
fn task_id(raw: &str) -> Option<Uuid> {
    Uuid::try_parse(raw).ok().filter(|_| raw.len() == 36)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_and_methods() {
        assert_eq!(Route::resolve("/api/tasks"), Some(Route::Tasks));
        assert_eq!(Route::resolve("/api/tasks/"), Some(Route::Tasks));
        assert_eq!(Route::resolve("/api/tasks/abc"), Some(Route::Task(None)));
        assert_eq!(Route::resolve("/api/tasks/abc/def"), None);
        assert_eq!(Route::resolve("/api/nope"), None);
        assert!(Route::Tasks.allows(&Method::POST));
        assert!(!Route::Tasks.allows(&Method::DELETE));
        assert_eq!(Route::Task(None).allow(), "GET, PUT, DELETE");
    }

    #[test]
    fn task_ids_are_hyphenated_uuids_in_any_case() {
        let id = Uuid::new_v4();
        let path = |raw: String| Route::resolve(&format!("/api/tasks/{raw}"));
        assert_eq!(path(id.to_string()), Some(Route::Task(Some(id))));
        assert_eq!(
            path(id.to_string().to_uppercase()),
            Some(Route::Task(Some(id)))
        );
        assert_eq!(path(id.simple().to_string()), Some(Route::Task(None)));
        assert_eq!(path(format!("{{{id}}}")), Some(Route::Task(None)));
    }

    #[test]
    fn allows_answers_exactly_the_allow_header() {
        let methods = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ];
        for route in Route::ALL {
            for method in &methods {
                let listed = route.allow().split(", ").any(|m| m == method.as_str());
                assert_eq!(route.allows(method), listed, "{route:?} {method}");
            }
        }
    }
}
