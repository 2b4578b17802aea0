//! The permission matrix through the built binary: one route of each family against every kind
//! of caller. Every route and the cross-workspace guesses run in process (`tests/inproc`), from
//! the same table (`inbox_tests::tables::permissions`).

use inbox_tests::TestEnv;
use inbox_tests::tables::{Coverage, permissions};
use inbox_tests::team::Api;

inbox_store::on_both_backends!(inbox_tests::TestEnv;
    a_route_of_each_family_answers_each_caller_exactly,
);

async fn a_route_of_each_family_answers_each_caller_exactly(env: TestEnv) {
    let direct = env.direct().await;
    let server = env.api(&[]).await;
    permissions::every_route_answers_each_caller_exactly(
        &direct,
        &Api::new(&server),
        Coverage::Sample,
    )
    .await;
}
