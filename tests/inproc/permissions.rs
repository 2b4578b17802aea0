//! The permission matrix in process: every route against every kind of caller, and callers of
//! another workspace guessing ids, on both databases.

use inbox_tests::tables::{Coverage, permissions};

use crate::App;

inbox_store::on_both_backends!(crate::App;
    every_route_answers_each_caller_exactly,
    another_workspace_never_reaches_this_one,
);

async fn every_route_answers_each_caller_exactly(app: App) {
    permissions::every_route_answers_each_caller_exactly(&app.direct, &app.api, Coverage::Full)
        .await;
}

async fn another_workspace_never_reaches_this_one(app: App) {
    permissions::another_workspace_never_reaches_this_one(&app.direct, &app.api).await;
}
