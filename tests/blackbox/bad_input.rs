//! Bad input through the built binary: one row of each route family gets its documented status
//! and code, and a message naming the field; bodies over the limit and unknown routes answer
//! in the error shape. The whole table runs in process (`tests/inproc`), from the same code
//! (`inbox_tests::tables::bad_input`).

use inbox_tests::TestEnv;
use inbox_tests::tables::{Coverage, bad_input};
use inbox_tests::team::Api;

inbox_store::on_both_backends!(inbox_tests::TestEnv;
    bad_input_of_each_family_gets_its_code_and_oversized_bodies_413,
);

async fn bad_input_of_each_family_gets_its_code_and_oversized_bodies_413(env: TestEnv) {
    let direct = env.direct().await;
    let server = env.api(&[]).await;
    let api = Api::new(&server);
    bad_input::each_kind_of_bad_input_gets_its_code_and_names_the_field(
        &direct,
        &api,
        Coverage::Sample,
    )
    .await;
    bad_input::bodies_over_a_mebibyte_get_413_and_routes_answer_in_the_error_shape(
        &direct, &api, "shapes",
    )
    .await;
}
