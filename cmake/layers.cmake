# mq_add_layer(<layer> SOURCES <files...> LINKS <targets...>)
#   One static library per layer of docs/architecture.md, named moequant_<layer>. It links
#   PUBLIC only the layers below it (and outside libraries), so a call that reaches up a layer
#   fails to link; tests/layering_test.py checks the includes against the same order.
function(mq_add_layer layer)
  cmake_parse_arguments(L "" "" "SOURCES;LINKS" ${ARGN})
  add_library(moequant_${layer} STATIC ${L_SOURCES})
  target_include_directories(moequant_${layer} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>)
  target_include_directories(moequant_${layer} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(moequant_${layer} PUBLIC ${L_LINKS})
  target_compile_options(moequant_${layer} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${MOEQUANT_WARNINGS}>)
  set_property(GLOBAL APPEND PROPERTY MOEQUANT_LAYER_TARGETS moequant_${layer})
endfunction()

# mq_torch_pch(<target>): the LibTorch layers compile with one precompiled header of the LibTorch
# and JSON headers they include (built once, by moequant_core): it halves the compile time of their
# translation units. (Not the tool's: an executable is -fPIE, the libraries -fPIC, and a header of
# its own costs as much as it saves there.)
function(mq_torch_pch target)
  if(NOT MOEQUANT_PCH)
    return()
  endif()
  if(target STREQUAL "moequant_core")
    target_precompile_headers(moequant_core PRIVATE <ATen/ATen.h> <torch/nn/module.h>
                              <nlohmann/json.hpp>)
  else()
    target_precompile_headers(${target} REUSE_FROM moequant_core)
  endif()
endfunction()
