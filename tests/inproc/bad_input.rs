//! The bad-input table in process: every kind of bad input, oversized bodies and unknown
//! routes, and a tag bomb, on both databases.

use inbox_tests::tables::{Coverage, bad_input};

use crate::App;

inbox_store::on_both_backends!(crate::App;
    each_kind_of_bad_input_gets_its_code_and_names_the_field,
    bodies_over_a_mebibyte_get_413_and_routes_answer_in_the_error_shape,
    a_tag_bomb_is_refused_by_its_count_and_outsiders_learn_nothing,
);

async fn each_kind_of_bad_input_gets_its_code_and_names_the_field(app: App) {
    bad_input::each_kind_of_bad_input_gets_its_code_and_names_the_field(
        &app.direct,
        &app.api,
        Coverage::Full,
    )
    .await;
}

async fn bodies_over_a_mebibyte_get_413_and_routes_answer_in_the_error_shape(app: App) {
    bad_input::bodies_over_a_mebibyte_get_413_and_routes_answer_in_the_error_shape(
        &app.direct,
        &app.api,
        "acme",
    )
    .await;
}

async fn a_tag_bomb_is_refused_by_its_count_and_outsiders_learn_nothing(app: App) {
    bad_input::a_tag_bomb_is_refused_by_its_count_and_outsiders_learn_nothing(
        &app.direct,
        &app.api,
    )
    .await;
}
