//! A GPU lane writer on the host backend (no GPU needed), for the bindings' tests of
//! a GPU lane's CPU mirror (python/tests): creates GPU stream `NAME` with a mirror
//! (`NAME.cpu`), prints `ready`, waits for a line on stdin, writes `COUNT` float32
//! tensors of shape `[4]` whose every element is the item's index, then prints
//! `ok COUNT` and waits for stdin to close before exiting (and unlinking its lanes).
//!
//! ```text
//! gpu_peer host-stream-write NAME COUNT
//! ```

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
fn run(name: &str, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::BufRead;
    use tensorlane_gpu::{GpuLaneOptions, GpuStreamWriter, HostBackend};
    use tensorlane_shm::{DType, TensorSpec};

    let spec = TensorSpec::new(DType::F32, &[4])?;
    let backend = HostBackend::new();
    let options = GpuLaneOptions::new().mirror(true);
    let mut writer = GpuStreamWriter::create(&backend, name, &spec, 3, options)?;
    println!("ready");
    let mut lines = std::io::stdin().lock().lines();
    lines.next();
    for i in 0..count {
        let tensor = [i as f32; 4];
        writer.write(bytemuck::cast_slice(&tensor))?;
    }
    writer.synchronize()?;
    println!("ok {count}");
    for _ in lines {}
    drop(writer);
    for lane in [name.to_string(), tensorlane_gpu::mirror_name(name)] {
        let _ = tensorlane_shm::segment::unlink(&tensorlane_shm::LaneName::new(&lane)?);
    }
    Ok(())
}

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, verb, name, count] = args.as_slice() else {
        eprintln!("usage: gpu_peer host-stream-write NAME COUNT");
        std::process::exit(2);
    };
    let (true, Ok(count)) = (verb == "host-stream-write", count.parse()) else {
        eprintln!("usage: gpu_peer host-stream-write NAME COUNT");
        std::process::exit(2);
    };
    if let Err(e) = run(name, count) {
        eprintln!("gpu_peer {verb} {name}: {e}");
        std::process::exit(1);
    }
}

/// Under the checkers' features the lanes are compiled out.
#[cfg(any(feature = "loom", feature = "shuttle"))]
fn main() {
    eprintln!("gpu_peer: the lanes are compiled out under the loom and shuttle features");
    std::process::exit(2);
}
