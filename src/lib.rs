//! regstudy: reproducible, fast studies of how weight regularization changes convolutional
//! networks.
//!
//! The crate is a small training engine written for that one job:
//!
//! - [`engine`]: f32 tensors in NHWC layout, matrix multiply, im2col, the thread pool, the RNG;
//! - [`nn`]: layers as forward/backward pairs, a network built from a [`nn::ModelSpec`], named
//!   parameters with a [`nn::ParamKind`], softmax cross-entropy;
//! - [`optim`]: SGD, Adam and AdamW with PyTorch's exact update rules, and the
//!   [`optim::StepHook`] through which penalties act inside the optimizer's single pass;
//! - [`models`]: the source studies' networks as specs;
//! - [`weights_file`]: weights and optimizer state in the safetensors format (the resume
//!   checkpoint of a run, which holds such files, is [`train::checkpoint`]);
//! - [`regularize`]: the regularizers (L1, L2, group lasso, gradual magnitude pruning), one
//!   file each behind one trait, and the weight statistics (sparsity, zero filters, histograms);
//! - [`train`]: one run of an experiment (`regstudy train`), its config, loop and records;
//! - [`study`], [`store`], [`report`]: grids of runs over methods, strengths and seeds, kept in
//!   a crash-safe store and reported with confidence intervals and paired tests;
//! - [`trial`]: the records of studies and trials that the study runner, the store and the
//!   report share.

pub mod data;
pub mod engine;
pub mod export;
pub mod fsio;
pub mod models;
pub mod nn;
pub mod optim;
pub mod regularize;
pub mod report;
pub mod stats;
pub mod store;
pub mod study;
pub mod train;
pub mod trial;
pub mod weights_file;
