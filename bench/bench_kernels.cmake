# bench_kernels: amax and quantize kernels against the copy / single-pass-read yardsticks of the
# same run (CPU part always; GPU part with CUDA). Flags: --cpu-only, --gpu-only, --layers N.
# Included from bench/CMakeLists.txt; kept apart so a kernels-only build can include it alone
# (bench/run_device.sh does when the whole project does not configure).
add_executable(bench_kernels ${CMAKE_CURRENT_LIST_DIR}/bench_kernels.cpp)
target_link_libraries(bench_kernels PRIVATE moequant_kernels OpenMP::OpenMP_CXX)
target_compile_options(bench_kernels PRIVATE
  $<$<COMPILE_LANGUAGE:CXX>:${MOEQUANT_WARNINGS}>
  $<$<COMPILE_LANGUAGE:CUDA>:${MOEQUANT_CUDA_WARNINGS}>)
if(MOEQUANT_HAS_CUDA)
  target_sources(bench_kernels PRIVATE ${CMAKE_CURRENT_LIST_DIR}/bench_kernels_gpu.cu)
  target_link_libraries(bench_kernels PRIVATE CUDA::cudart)
endif()

# bench_kernels_gpu: one launch per matrix against one mq_cuda_quantize_batched launch, per
# format, over MoE expert stacks and one 16384x16384 matrix (bench_kernels_gpu.cu, its own main).
if(MOEQUANT_HAS_CUDA)
  add_executable(bench_kernels_gpu ${CMAKE_CURRENT_LIST_DIR}/bench_kernels_gpu.cu)
  target_compile_definitions(bench_kernels_gpu PRIVATE MOEQUANT_BENCH_KERNELS_GPU_MAIN)
  target_link_libraries(bench_kernels_gpu PRIVATE moequant_kernels CUDA::cudart)
  target_compile_options(bench_kernels_gpu PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:${MOEQUANT_CUDA_WARNINGS}>)
endif()
