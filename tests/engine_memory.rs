//! Resident memory stays flat across training steps: every layer reuses its buffers.
//! This file holds one test so that nothing else allocates in its process while it measures.

use regstudy::engine::{Rng, Tensor};
use regstudy::nn::spec::InputShape;
use regstudy::nn::{Context, Init};
use regstudy::optim::AdamConfig;
use regstudy::regularize::Regularizers;
use regstudy::train::TrainStep;

#[test]
fn memory_does_not_grow_across_training_steps() {
    fn resident_kb() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    if !std::path::Path::new("/proc/self/status").exists() {
        return;
    }
    let input = InputShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    let mut net = regstudy::models::simple_cnn(input, 10)
        .build(Init::Pytorch, 0)
        .unwrap();
    let mut opt = AdamConfig::new(1e-3).init();
    let mut ctx = Context::train(Rng::new(0));
    let mut rng = Rng::new(1);
    let x = Tensor::from_vec(
        &[64, 32, 32, 3],
        (0..64 * 3072).map(|_| rng.next_f32()).collect(),
    )
    .unwrap();
    let y: Vec<u32> = (0..64).map(|i| i % 10).collect();
    let mut train_step = TrainStep::new();
    let mut step = || {
        let done = train_step.run(
            &mut net,
            &mut opt,
            &mut Regularizers::default(),
            &mut ctx,
            &x,
            &y,
        );
        assert!(done.is_ok(), "{done:?}");
    };
    // The allocator settles over the first steps (each worker thread grows its own arena,
    // and how far depends on the machine), so the measured window starts after a warm-up and
    // is long enough that a per-step leak adds up.
    (0..40).for_each(|_| step());
    let before = resident_kb();
    (0..40).for_each(|_| step());
    let growth_mb = (resident_kb().saturating_sub(before)) as f64 / 1024.0;
    // One step's buffers are ~100 MB; leaking even 100 KB per step would add 4 MB here.
    assert!(
        growth_mb < 3.0,
        "resident memory grew by {growth_mb:.1} MB over 40 steps"
    );
}
