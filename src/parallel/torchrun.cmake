# The NCCL bootstrap under torchrun (torchrun_store.cpp): c10d::TCPStore from LibTorch, in a
# static library of its own linking torch PRIVATE, so that torch's include dirs and defines reach
# this file alone and moequant_parallel stays torch-free. It links torch_cpu (where TCPStore
# lives) rather than `torch`, which TorchConfig wraps in --no-as-needed: binaries that never reach
# the torchrun bootstrap and link as-needed (the multi-rank tests) then do not load LibTorch.
# Without LibTorch (MOEQUANT_WITH_TORCH=OFF) a torchrun launch is refused by name instead.
set(mq_parallel_dir ${CMAKE_CURRENT_LIST_DIR})
if(MOEQUANT_HAS_NCCL AND Torch_FOUND)
  add_library(moequant_parallel_torchrun STATIC ${mq_parallel_dir}/torchrun_store.cpp)
  target_include_directories(moequant_parallel_torchrun PRIVATE
    ${PROJECT_SOURCE_DIR}/include ${mq_parallel_dir})
  target_include_directories(moequant_parallel_torchrun SYSTEM PRIVATE ${TORCH_INCLUDE_DIRS})
  separate_arguments(mq_torch_cxx_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  target_compile_options(moequant_parallel_torchrun PRIVATE ${mq_torch_cxx_flags}
                         ${MOEQUANT_WARNINGS})
  if(TARGET torch_cpu)
    target_link_libraries(moequant_parallel_torchrun PRIVATE torch_cpu)
  else()
    target_link_libraries(moequant_parallel_torchrun PRIVATE ${TORCH_LIBRARIES})
  endif()
  target_link_libraries(moequant_parallel PRIVATE moequant_parallel_torchrun)
elseif(MOEQUANT_HAS_NCCL)
  target_sources(moequant_parallel PRIVATE ${mq_parallel_dir}/torchrun_store_unavailable.cpp)
endif()
