//! Contexts follow futures across `.await`, threads and spawned tasks.

use serde_json::json;
use tidings_context::{self as context, WithContextExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_is_carried_into_a_spawned_task() {
    let handle = {
        let _g = context::enter("request", json!({"request_id": "r-1"}));
        tokio::spawn(
            async {
                tokio::task::yield_now().await;
                context::current().to_value()
            }
            .with_current_context(),
        )
    };
    assert_eq!(handle.await.unwrap(), json!({"request_id": "r-1"}));
    assert!(context::current().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_tasks_see_their_parents_context() {
    let parent = async {
        let child = tokio::spawn(
            async {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                context::current().to_value()
            }
            .in_context("child", json!({"depth": 2})),
        );
        child.await.unwrap()
    };
    let seen = tokio::spawn(parent.in_context("parent", json!({"depth": 1, "from": "parent"})))
        .await
        .unwrap();
    assert_eq!(seen, json!({"depth": 2, "from": "parent"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_future_keeps_its_context_across_awaits_without_leaking_it() {
    let fut = async {
        for _ in 0..10 {
            tokio::task::yield_now().await;
            assert_eq!(context::current().to_value(), json!({"secret": 1}));
            // Guards that do not cross an `.await` work inside, too.
            let _g = context::enter("step", json!({"step": true}));
            assert_eq!(
                context::current().to_value(),
                json!({"secret": 1, "step": true})
            );
        }
    }
    .in_context("inner", json!({"secret": 1}));
    tokio::spawn(fut).await.unwrap();
    // Other tasks on the same workers never see `secret`.
    for _ in 0..4 {
        let outside = tokio::spawn(async { context::current().to_value() })
            .await
            .unwrap();
        assert_eq!(outside, json!({}));
    }
}

#[test]
fn without_a_wrapper_a_spawned_thread_starts_empty() {
    let _g = context::enter("main", json!({"x": 1}));
    let seen = std::thread::spawn(|| context::current().to_value())
        .join()
        .unwrap();
    assert_eq!(seen, json!({}));
}
