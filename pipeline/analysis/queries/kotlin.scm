(class_declaration (type_identifier) @name) @definition.class
(object_declaration (type_identifier) @name) @definition.class
(function_declaration (simple_identifier) @name) @definition.function

(class_declaration
  (delegation_specifier [(user_type (type_identifier) @inherit.base)
                         (constructor_invocation (user_type (type_identifier) @inherit.base))])) @inherit.class

(import_header (identifier) @import.module) @import

(call_expression . (simple_identifier) @call.name) @call
(call_expression . (navigation_expression (navigation_suffix (simple_identifier) @call.name))) @call
